/**
 * Notification payloads as text: is it a JSON document, and its pretty view.
 *
 * A payload is shown exactly as it was sent. Parsing JSON and serializing it
 * again would change values: JavaScript numbers are doubles, so
 * `9007199254740993` comes back as `9007199254740992`, `1.10` as `1.1` and
 * `1e400` as `null`, and duplicate keys collapse to one. The pretty view
 * therefore re-lays out the payload's own tokens and changes whitespace
 * between them only; every string, number and literal keeps its exact text.
 */

/**
 * Whether the text is one JSON object or array (surrounding whitespace
 * allowed): the payloads worth a collapsible, re-indented view. A bare
 * number or string reads better as the text it was sent as.
 */
export function isJsonContainer(text: string): boolean {
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '[') {
    return false;
  }
  try {
    // Validation only: the parsed value is never shown.
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * One JSON token or a run of whitespace. The text has passed JSON.parse, so
 * no string holds a raw control character and a backslash always starts an
 * escape of at least one more character.
 */
const TOKEN = /\s+|"(?:[^"\\]|\\.)*"|[{}[\],:]|[^\s{}[\],:"]+/gy;

/**
 * The payload's tokens in order, whitespace dropped; joined they give the
 * payload without its insignificant whitespace.
 */
export function jsonTokens(text: string): string[] {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  for (let match = TOKEN.exec(text); match; match = TOKEN.exec(text)) {
    if (!/^\s/.test(match[0])) {
      tokens.push(match[0]);
    }
  }
  return tokens;
}

const CLOSING: Record<string, string> = { '{': '}', '[': ']' };

/**
 * A JSON object or array re-indented by `indent` spaces per level, in the
 * layout of `JSON.stringify(value, null, indent)` but from the payload's own
 * tokens, so no value changes; undefined when the text is not a JSON object
 * or array.
 */
export function reindentJson(text: string, indent = 2): string | undefined {
  if (!isJsonContainer(text)) {
    return undefined;
  }
  const tokens = jsonTokens(text);
  const parts: string[] = [];
  let depth = 0;
  const newline = () => '\n' + ' '.repeat(depth * indent);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === '{' || token === '[') {
      if (tokens[i + 1] === CLOSING[token]) {
        parts.push(token, tokens[++i]);
      } else {
        depth++;
        parts.push(token, newline());
      }
    } else if (token === '}' || token === ']') {
      depth--;
      parts.push(newline(), token);
    } else if (token === ',') {
      parts.push(',', newline());
    } else if (token === ':') {
      parts.push(': ');
    } else {
      parts.push(token);
    }
  }
  return parts.join('');
}
