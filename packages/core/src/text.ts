/** Shortens text to at most `maxLength` characters (not UTF-16 units) by replacing its middle with " ... ". */
export function elideMiddle(text: string, maxLength: number): string {
  const chars = Array.from(text);
  if (chars.length <= maxLength) return text;
  const half = Math.floor((maxLength - 5) / 2);
  return `${chars.slice(0, half).join('')} ... ${chars.slice(chars.length - half).join('')}`;
}
