import { describe, expect, it } from 'vitest';

import { isJsonContainer, jsonTokens, reindentJson } from '../payload';
import { LOSSY } from './fakes';

/** What JSON.parse + JSON.stringify make of LOSSY: what the panel used to show. */
const ROUND_TRIPPED =
  '{"id":9007199254740992,"amount":1.1,"n":null,"s":"second","neg":0,' +
  '"big":[1.2345678901234568e+29,100]}';

/** The text outside strings, without whitespace: what re-indenting must keep. */
function squeezed(text: string): string {
  return jsonTokens(text).join('');
}

describe('isJsonContainer', () => {
  it.each(['{}', '  [null]', '{"a":{"b":[]}}', ' \n\t{"a":1}\r\n', LOSSY])(
    'takes %j',
    input => {
      expect(isJsonContainer(input)).toBe(true);
    }
  );

  it.each([
    '',
    'null',
    '1',
    '"{}"',
    '{',
    '[1,]',
    'true',
    '{"a":1} trailing',
    "{'a': 1}",
    '[draft] order 42',
    '\u00a0{"a":1}'
  ])('leaves %j as text', input => {
    expect(isJsonContainer(input)).toBe(false);
  });
});

describe('jsonTokens', () => {
  it('keeps strings whole, escapes and all', () => {
    expect(jsonTokens('{"a b": "x\\"y, z", "c\\\\": [1.50e-3 ,true]}')).toEqual(
      [
        '{',
        '"a b"',
        ':',
        '"x\\"y, z"',
        ',',
        '"c\\\\"',
        ':',
        '[',
        '1.50e-3',
        ',',
        'true',
        ']',
        '}'
      ]
    );
  });
});

describe('reindentJson', () => {
  it('gives the JSON.stringify layout when values survive a round trip', () => {
    const text = ' {"order": 42, "lines": [1, 2], "meta": {}, "tags": [ ]}';
    expect(reindentJson(text)).toBe(
      JSON.stringify({ order: 42, lines: [1, 2], meta: {}, tags: [] }, null, 2)
    );
  });

  it('never changes a value, where a round trip would', () => {
    expect(JSON.stringify(JSON.parse(LOSSY))).toBe(ROUND_TRIPPED);
    const pretty = reindentJson(LOSSY)!;
    expect(pretty).toBe(
      [
        '{',
        '  "id": 9007199254740993,',
        '  "amount": 1.10,',
        '  "n": 1e400,',
        '  "s": "é\\u0000",',
        '  "s": "second",',
        '  "neg": -0.0,',
        '  "big": [',
        '    123456789012345678901234567890,',
        '    1E+2',
        '  ]',
        '}'
      ].join('\n')
    );
    expect(squeezed(pretty)).toBe(squeezed(LOSSY));
  });

  it('re-indents already indented or minified text alike', () => {
    const minified = '[{"a":[1,{"b":null}]},"x",[]]';
    const indented = '[\n\t{ "a" : [ 1 ,\r\n { "b" :null} ] } ,\n "x", [\n] ]';
    expect(reindentJson(indented)).toBe(reindentJson(minified));
    expect(reindentJson(minified, 4)).toBe(
      JSON.stringify(JSON.parse(minified), null, 4)
    );
  });

  it('leaves whitespace inside strings alone', () => {
    const text = '{"k":"a , b : [c] {d}\\n  e"}';
    expect(reindentJson(text)).toBe('{\n  "k": "a , b : [c] {d}\\n  e"\n}');
  });

  it.each(['', 'plain text 1.10', '42', '"quoted"', '{"order": 42'])(
    'gives nothing for %j',
    input => {
      expect(reindentJson(input)).toBeUndefined();
    }
  );
});
