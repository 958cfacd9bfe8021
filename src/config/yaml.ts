// YAML text into plain values, with a Reader (reader.ts) that knows the
// source line of every path. Syntax errors, an alias without its anchor and
// alias bombs are ConfigFileErrors naming the file (and the line when known).
// Only init and the services load this (and with it the yaml package);
// components read the sections init parsed.
import { LineCounter, parseDocument, isNode } from 'yaml';
import { ConfigFileError, Reader, type Path } from './reader.ts';

/** A YAML document parsed into plain values, with a Reader that knows its lines. */
export function parseYaml(text: string, file: string): { value: unknown; r: Reader } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line;
    throw new ConfigFileError(file, '', `YAML syntax error: ${e.message.split('\n')[0]}`, line);
  }
  const lineOf = (path: Path): number | undefined => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
    }
    return undefined;
  };
  const r: Reader = new Reader(file, lineOf);
  let value: unknown;
  try {
    value = doc.toJS(); // throws on an alias without its anchor, or too many alias expansions
  } catch (e) {
    throw new ConfigFileError(file, '', `YAML error: ${(e as Error).message.split('\n')[0]}`);
  }
  return { value, r };
}
