// The wire format of an analysis (original BinaryAlert's PascalCase layout), built only at the
// edges: the SNS alert payload and the analyzer's invocation result (objectSummary), and
// `manage.ts scan --json` (localFileSummary). Everything else uses ObjectAnalysis (analysis.ts).
import type { ExternalValue, RuleMatch, UnscannedContent } from '@binaryalert/yara';
import type { Coverage, FileAnalysis, ObjectAnalysis } from './analysis';
import { objectId } from './logger';

export interface MatchedRuleSummary {
  RuleName: string;
  RuleFile: string;
  RuleTags: string[];
  Meta: Record<string, ExternalValue>;
  MatchedStrings: string[];
  /** Where the rule matched when it was inside the object: `key!dir/member` and its SHA-256. */
  MemberPath?: string;
  MemberSHA256?: string;
}

export interface UnscannedSummary {
  Path: string;
  Reason: UnscannedContent['reason'];
  Detail: string;
}

/**
 * The wire format of one object's analysis (original BinaryAlert's layout): the SNS alert payload
 * and the analyzer's invocation result. Built only there, by objectSummary.
 */
export interface FileSummary {
  FileInfo: {
    /** Only where it is stored or sent: files a rule matched (and every file with negative-match alerts on). */
    MD5?: string;
    SHA256: string;
    S3LastModified: string;
    S3Location: string;
    S3Metadata: Record<string, string>;
  };
  /** Keys Rule1, Rule2, ... in match order (the object's own matches first, then its members'). */
  MatchedRules: Record<string, MatchedRuleSummary>;
  NumMatchedRules: number;
  /** `partial` when some content inside could not be scanned (listed in Unscanned). */
  Coverage: Coverage;
  /** Members of containers inside the object that were scanned. */
  NumMembersScanned: number;
  Unscanned: UnscannedSummary[];
}

/** `manage.ts scan --json`: the same layout as FileSummary, for a local file. */
export interface LocalFileSummary extends Omit<FileSummary, 'FileInfo'> {
  FileInfo: {
    MD5?: string;
    SHA256: string;
    /** The path as given on the command line (or found below it). */
    Path: string;
    /** The file's modification time. */
    LastModified: string;
    /** @deprecated The same as Path; kept for scripts written against older `scan --json`. */
    S3Location: string;
    /** @deprecated The same as LastModified; kept for the same reason. */
    S3LastModified: string;
  };
}

/** The fields of a summary that describe the analysis itself, whatever was analyzed. */
function analysisFields(analysis: FileAnalysis): Omit<FileSummary, 'FileInfo'> {
  const MatchedRules: Record<string, MatchedRuleSummary> = {};
  analysis.matches.forEach((match, index) => {
    MatchedRules[`Rule${index + 1}`] = {
      RuleName: match.rule,
      RuleFile: match.namespace,
      RuleTags: [...match.tags],
      Meta: { ...match.meta },
      MatchedStrings: matchedStringIds(match),
      ...(match.member ? { MemberPath: match.member.path, MemberSHA256: match.member.sha256 } : {}),
    };
  });
  return {
    MatchedRules,
    NumMatchedRules: analysis.matches.length,
    Coverage: analysis.coverage,
    NumMembersScanned: analysis.members.filter((member) => member.type === 'file').length,
    Unscanned: analysis.unscanned.map(({ path: Path, reason, detail }) => ({
      Path,
      Reason: reason,
      Detail: detail,
    })),
  };
}

/** The identifiers of the strings a rule matched, once each, sorted. */
export function matchedStringIds(match: Pick<RuleMatch, 'strings'>): string[] {
  return [...new Set(match.strings.map((s) => s.identifier))].sort();
}

/** The wire format (alert payload, invocation result) of an object's analysis. */
export function objectSummary({ object, analysis }: ObjectAnalysis): FileSummary {
  return {
    FileInfo: {
      ...(analysis.md5 === undefined ? {} : { MD5: analysis.md5 }),
      SHA256: analysis.sha256,
      S3LastModified: object.lastModified,
      S3Location: objectId(object.bucket, object.key),
      S3Metadata: { ...object.metadata },
    },
    ...analysisFields(analysis),
  };
}

/** What `scan --json` prints for a local file. */
export function localFileSummary(
  analysis: FileAnalysis,
  file: { path: string; lastModified: string },
): LocalFileSummary {
  return {
    FileInfo: {
      ...(analysis.md5 === undefined ? {} : { MD5: analysis.md5 }),
      SHA256: analysis.sha256,
      Path: file.path,
      LastModified: file.lastModified,
      S3Location: file.path,
      S3LastModified: file.lastModified,
    },
    ...analysisFields(analysis),
  };
}
