/**
 * Conf strings that reference APISIX variables, as APISIX's own proxy-rewrite allows:
 * `$name` or `${name}`, with a fallback for an unset variable as `${name ?? fallback}`. An unset
 * variable without a fallback becomes `""`. `\$` is a literal `$`, and so is a `$` that starts
 * no name.
 *
 * Templates are parsed once, when the conf is parsed; rendering needs the values of the
 * variables the template names, which a filter fetches once per call with `req.var()`.
 *
 * @module
 */
import { ConfError } from "./conf_reader.ts";

/** Most variables a plugin may declare in `prefetch` (see the `Prefetch` type); more are read as they are used. */
export const MAX_PREFETCH_VARS = 32;

/** One variable reference. */
interface VarRef {
  name: string;
  fallback: string | null;
}

/** A parsed template: literal text and variable references, in order. */
export class VarTemplate {
  /** The parts, literal strings and variable references. */
  readonly parts: ReadonlyArray<string | VarRef>;
  /** The distinct variable names it references. */
  readonly vars: readonly string[];

  private constructor(parts: Array<string | VarRef>) {
    this.parts = parts;
    this.vars = [
      ...new Set(parts.filter((p): p is VarRef => typeof p !== "string").map((p) => p.name)),
    ];
  }

  /** Parses `text`; `field` names it in the error for an unterminated `${`. */
  static parse(field: string, text: string): VarTemplate {
    const parts: Array<string | VarRef> = [];
    let literal = "";
    let i = 0;
    while (i < text.length) {
      const c = text[i]!;
      if (c === "\\" && text[i + 1] === "$") {
        literal += "$";
        i += 2;
        continue;
      }
      if (c !== "$") {
        literal += c;
        i++;
        continue;
      }
      if (text[i + 1] === "{") {
        const end = text.indexOf("}", i + 2);
        if (end < 0) {
          throw new ConfError(`${field}: unterminated "\${" in ${JSON.stringify(text)}`);
        }
        const inner = text.slice(i + 2, end);
        const at = inner.indexOf("??");
        const name = (at < 0 ? inner : inner.slice(0, at)).trim();
        if (!/^[\w.]+$/.test(name)) {
          throw new ConfError(
            `${field}: expected a variable name inside "\${...}", got ${JSON.stringify(inner)}`,
          );
        }
        if (literal) parts.push(literal);
        literal = "";
        parts.push({ name, fallback: at < 0 ? null : inner.slice(at + 2).trim() });
        i = end + 1;
        continue;
      }
      // A name is word characters, with dots only between them: "$host." ends at the dot.
      const match = /^\w+(?:\.\w+)*/.exec(text.slice(i + 1));
      if (!match) {
        literal += "$";
        i++;
        continue;
      }
      if (literal) parts.push(literal);
      literal = "";
      parts.push({ name: match[0], fallback: null });
      i += 1 + match[0].length;
    }
    if (literal) parts.push(literal);
    return new VarTemplate(parts);
  }

  /** Whether the template references no variable. */
  get constant(): boolean {
    return this.vars.length === 0;
  }

  /** The text with every variable replaced by its value from `values` (unset: fallback or ""). */
  render(values: ReadonlyMap<string, string | null>): string {
    let out = "";
    for (const part of this.parts) {
      if (typeof part === "string") out += part;
      else out += values.get(part.name) ?? part.fallback ?? "";
    }
    return out;
  }
}

/** Fetches each of `names` once, in parallel, with `read` (e.g. `req.var`). */
export async function fetchVars(
  names: Iterable<string>,
  read: (name: string) => Promise<string | null>,
): Promise<Map<string, string | null>> {
  const list = [...new Set(names)];
  const values = await Promise.all(list.map((name) => read(name)));
  return new Map(list.map((name, i) => [name, values[i] ?? null]));
}
