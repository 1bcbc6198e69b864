/** Types of split-imports.mjs (plain JavaScript: run with any Node, no loader). */
export function rewrite(
  file: string,
  text: string,
  names: ReadonlyMap<string, ReadonlySet<string>>,
): { text: string; changed: boolean; problems: string[] };
