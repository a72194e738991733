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

function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
    if (entity.startsWith('#x')) return String.fromCodePoint(Number.parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(Number.parseInt(entity.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[entity]!;
  });
}

/** The text of each `<tag>` inside each `<group>` element of a small request document. */
export function childElements(
  xml: string,
  group: string,
  tags: string[],
): Record<string, string>[] {
  const groups = [...xml.matchAll(new RegExp(`<${group}>([\\s\\S]*?)</${group}>`, 'g'))];
  return groups.map(([, inner = '']) => {
    const fields: Record<string, string> = {};
    for (const tag of tags) {
      const match = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(inner);
      if (match) fields[tag] = unescapeXml(match[1] ?? '');
      else if (new RegExp(`<${tag}\\s*/>`).test(inner)) fields[tag] = '';
    }
    return fields;
  });
}

/** The text of the first `<tag>` in a document, if any. */
export function elementText(xml: string, tag: string): string | undefined {
  const match = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  return match ? unescapeXml(match[1] ?? '') : undefined;
}
