import { elideMiddle } from './text';

describe('elideMiddle', () => {
  it('keeps short text', () => {
    expect(elideMiddle('short', 99)).toBe('short');
    expect(elideMiddle('x'.repeat(99), 99)).toBe('x'.repeat(99));
  });

  it('replaces the middle of long text to fit the limit', () => {
    const elided = elideMiddle(`${'a'.repeat(60)}${'b'.repeat(60)}`, 99);

    expect(elided).toBe(`${'a'.repeat(47)} ... ${'b'.repeat(47)}`);
    expect(elided.length).toBeLessThanOrEqual(99);
  });

  it('counts characters, not UTF-16 units', () => {
    const elided = elideMiddle('🚀'.repeat(200), 99);

    expect(Array.from(elided)).toHaveLength(99);
    expect(elided).not.toContain('\uFFFD');
  });
});
