import { S3Error } from './errors';

const XML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/** Text for an XML element: markup escaped, control characters as character references. */
export function xmlText(value: string): string {
  return value.replace(
    // eslint-disable-next-line no-control-regex
    /[&<>"'\u0000-\u0008\u000b\u000c\u000e-\u001f]/g,
    (c) => XML_ESCAPES[c] ?? `&#x${c.charCodeAt(0).toString(16)};`,
  );
}

/** `<name>text</name>` for each defined value. */
export function elements(fields: Record<string, string | number | boolean | undefined>): string {
  return Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `<${name}>${xmlText(String(value))}</${name}>`)
    .join('');
}

export function xmlDocument(root: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${body}</${root}>`;
}

/** A request document S3 cannot read. */
export const malformedXml = (): S3Error =>
  new S3Error(
    400,
    'MalformedXML',
    'The XML you provided was not well-formed or did not validate against our published schema',
  );

function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
    if (!entity.startsWith('#'))
      return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[entity]!;
    const code = entity.startsWith('#x')
      ? Number.parseInt(entity.slice(2), 16)
      : Number.parseInt(entity.slice(1), 10);
    // Past U+10FFFF String.fromCodePoint throws: a reference to no character is the client's.
    if (code > 0x10ffff) throw malformedXml();
    return String.fromCodePoint(code);
  });
}

/**
 * The text of the first `<tag>...</tag>` at or after `from` and where it ends. Searched for with
 * indexOf: a lazy regular expression is retried from each opening tag, so a document of unclosed
 * tags cost time quadratic in its length (minutes of the store's one thread for 4 MiB).
 */
function nextElement(
  xml: string,
  tag: string,
  from = 0,
): { text: string; end: number } | undefined {
  const open = `<${tag}>`;
  const close = `</${tag}>`;
  const start = xml.indexOf(open, from);
  if (start === -1) return undefined;
  const stop = xml.indexOf(close, start + open.length);
  if (stop === -1) return undefined;
  return { text: xml.slice(start + open.length, stop), end: stop + close.length };
}

/** The text of each `<tag>` inside each `<group>` element of a small request document. */
export function childElements(
  xml: string,
  group: string,
  tags: string[],
): Record<string, string>[] {
  const groups: Record<string, string>[] = [];
  for (let found = nextElement(xml, group); found; found = nextElement(xml, group, found.end)) {
    const inner = found.text;
    const fields: Record<string, string> = {};
    for (const tag of tags) {
      const match = nextElement(inner, tag);
      if (match) fields[tag] = unescapeXml(match.text);
      else if (new RegExp(`<${tag}\\s*/>`).test(inner)) fields[tag] = '';
    }
    groups.push(fields);
  }
  return groups;
}

/** The text of the first `<tag>` in a document, if any. */
export function elementText(xml: string, tag: string): string | undefined {
  const match = nextElement(xml, tag);
  return match ? unescapeXml(match.text) : undefined;
}
