import { z } from 'zod';

/**
 * Content prefilter of delta re-scans (in the style of mquery/ursadb n-gram indexes).
 *
 * A full analysis asks the addon for the object's content signature: the byte trigrams of
 * everything it scanned (the object and every container member) hashed into a bitmap, stored on
 * the binary's match-table item (CONTENT_SIGNATURE_ATTRIBUTE). A rules release states, for its delta rules, what bytes any match
 * requires (a ContentRequirement, computed from the rule sources by the CLI). A delta re-scan
 * then decides "no delta rule can match" without reading the object when some required literal
 * has a trigram the bitmap does not hold. Hash collisions only ever make the bitmap say "present":
 * a wrong answer can cost a download, never a missed match.
 */

/**
 * What any match of some rules requires of the scanned bytes: a literal (hex) that occurs in them
 * (`nocase`: up to ASCII letter case), all of some requirements, or any of them. A requirement
 * that cannot be stated is no requirement at all: the rules are then unfiltered.
 */
export type ContentRequirement =
  { bytes: string; nocase?: true } | { all: ContentRequirement[] } | { any: ContentRequirement[] };

export const ContentRequirementSchema: z.ZodType<ContentRequirement> = z.lazy(() =>
  z.union([
    z.object({ bytes: z.string().regex(/^(?:[0-9a-f]{2})+$/), nocase: z.literal(true).optional() }),
    z.object({ all: z.array(ContentRequirementSchema).min(1) }),
    z.object({ any: z.array(ContentRequirementSchema).min(1) }),
  ]),
);

/** The shortest literal a requirement may name: shorter ones have no trigram to look up. */
export const MIN_LITERAL_BYTES = 3;

/**
 * The signature's format (content-signature.h): 0x02 then a bitmap of 2^12..2^19 bits. Format 1
 * signatures predate reading some PDF streams whole: they may lack content a scan now sees.
 */
const FORMAT = 2;
const HASH_MULTIPLIER = 0x9e3779b1;
const MIN_BITMAP_BYTES = 1 << 9;
const MAX_BITMAP_BYTES = 1 << 16;

/** A content signature read back: its bitmap and the bitmap's size as a power of two (bits). */
export interface ContentSignature {
  bitmap: Uint8Array;
  log2Bits: number;
}

/** The signature of a stored attribute, or undefined when it is absent, of another format or damaged. */
export function readContentSignature(value: Uint8Array | undefined): ContentSignature | undefined {
  if (!value || value.length < 1 + MIN_BITMAP_BYTES || value[0] !== FORMAT) return undefined;
  const bytes = value.length - 1;
  if (bytes > MAX_BITMAP_BYTES || (bytes & (bytes - 1)) !== 0) return undefined;
  return { bitmap: value.subarray(1), log2Bits: Math.log2(bytes * 8) };
}

function holdsTrigram(signature: ContentSignature, a: number, b: number, c: number): boolean {
  const trigram = (a << 16) | (b << 8) | c;
  const index = Math.imul(trigram, HASH_MULTIPLIER) >>> (32 - signature.log2Bits);
  return (signature.bitmap[index >>> 3]! & (1 << (index & 7))) !== 0;
}

/** The byte and, for an ASCII letter, its other case. */
function caseVariants(byte: number): number[] {
  if (byte >= 0x41 && byte <= 0x5a) return [byte, byte + 0x20];
  if (byte >= 0x61 && byte <= 0x7a) return [byte, byte - 0x20];
  return [byte];
}

/** Whether the signature allows the literal to occur (every trigram, in some letter case, present). */
function mayHoldLiteral(signature: ContentSignature, hex: string, nocase: boolean): boolean {
  const bytes = Buffer.from(hex, 'hex');
  if (bytes.length < MIN_LITERAL_BYTES) return true;
  for (let i = 0; i + 2 < bytes.length; i++) {
    const [a, b, c] = [bytes[i]!, bytes[i + 1]!, bytes[i + 2]!];
    const present = nocase
      ? caseVariants(a).some((x) =>
          caseVariants(b).some((y) =>
            caseVariants(c).some((z) => holdsTrigram(signature, x, y, z)),
          ),
        )
      : holdsTrigram(signature, a, b, c);
    if (!present) return false;
  }
  return true;
}

/** Whether bytes with this signature may satisfy the requirement (false: they certainly cannot). */
export function mayMeetRequirement(
  signature: ContentSignature,
  requirement: ContentRequirement,
): boolean {
  if ('bytes' in requirement) {
    return mayHoldLiteral(signature, requirement.bytes, requirement.nocase === true);
  }
  if ('all' in requirement) return requirement.all.every((r) => mayMeetRequirement(signature, r));
  return requirement.any.some((r) => mayMeetRequirement(signature, r));
}

/**
 * Whether a delta re-scan of bytes with this (stored) signature can be decided "no match" without
 * reading them: only with a well-formed signature and a requirement they cannot meet.
 */
export function excludedByPrefilter(
  stored: Uint8Array | undefined,
  requirement: ContentRequirement | undefined,
): boolean {
  if (!requirement) return false;
  const signature = readContentSignature(stored);
  return signature !== undefined && !mayMeetRequirement(signature, requirement);
}
