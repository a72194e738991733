/**
 * Path globs for rule_sources.json: `*` and `?` stay within one path segment, `**` spans any
 * number of segments, `[abc]` is a character class and `{a,b}` an alternation. Paths use '/'.
 */
export function globToRegExp(glob: string): RegExp {
  let pattern = '';
  let braceDepth = 0;
  for (let i = 0; i < glob.length; i++) {
    const char = glob.charAt(i);
    if (char === '*') {
      if (glob.charAt(i + 1) === '*') {
        i++;
        if (glob.charAt(i + 1) === '/') {
          // "**/" matches zero or more whole directories.
          i++;
          pattern += '(?:[^/]*/)*';
        } else {
          pattern += '.*';
        }
      } else {
        pattern += '[^/]*';
      }
    } else if (char === '?') {
      pattern += '[^/]';
    } else if (char === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end === -1) {
        pattern += '\\[';
      } else {
        let body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        if (body.startsWith('!')) body = '^' + body.slice(1);
        pattern += `[${body}]`;
        i = end;
      }
    } else if (char === '{') {
      braceDepth++;
      pattern += '(?:';
    } else if (char === '}' && braceDepth > 0) {
      braceDepth--;
      pattern += ')';
    } else if (char === ',' && braceDepth > 0) {
      pattern += '|';
    } else {
      pattern += char.replace(/[.+^${}()|\\/]/g, '\\$&');
    }
  }
  if (braceDepth > 0) throw new SyntaxError(`unclosed "{" in glob ${JSON.stringify(glob)}`);
  return new RegExp(`^${pattern}$`);
}

/** Whether a '/'-separated relative path matches any of the globs. */
export function matchesAnyGlob(relativePath: string, globs: readonly string[]): boolean {
  return globs.some((glob) => globToRegExp(glob).test(relativePath));
}
