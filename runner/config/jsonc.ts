/**
 * JSON with comments, for the runner's configuration and the local gateway's routes file:
 * `//` line comments, `/* *\/` block comments and trailing commas are allowed, so that an
 * example file can explain itself. Everything else is plain JSON.
 *
 * @module
 */

/**
 * Parses JSON with comments and trailing commas. Comments become spaces, so the positions in
 * `JSON.parse` error messages still point at the right line and column.
 *
 * @example
 * ```ts
 * import { parseJsonc } from "./jsonc.ts";
 * parseJsonc('{"a": 1, // one\n}'); // { a: 1 }
 * ```
 */
export function parseJsonc(text: string): unknown {
  return JSON.parse(stripJsonc(text));
}

/** The text with comments and trailing commas replaced by spaces. */
export function stripJsonc(text: string): string {
  const out = text.split("");
  let i = 0;
  // Index of the last comma outside strings, while only whitespace and comments follow it.
  let pendingComma = -1;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      pendingComma = -1;
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      i++;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") out[i++] = " ";
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      const stop = end < 0 ? text.length : end + 2;
      for (; i < stop; i++) if (text[i] !== "\n") out[i] = " ";
    } else if (c === ",") {
      pendingComma = i++;
    } else if (c === "}" || c === "]") {
      if (pendingComma >= 0) out[pendingComma] = " ";
      pendingComma = -1;
      i++;
    } else {
      if (!/\s/.test(c)) pendingComma = -1;
      i++;
    }
  }
  return out.join("");
}
