import { randomUUID } from 'node:crypto';
import {
  GetItemCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  alertedRule,
  parseAlertedRule,
  storedMemberPath,
  type MatchedRule,
  type S3ObjectRef,
} from '@binaryalert/core';
import {
  claimExpiry,
  holdClaim,
  releaseClaim,
  stillNewCopy,
  stillNewRules,
  takeClaim,
  type Claim,
} from './alert-claim';
import { AlertInFlightError } from './errors';

/**
 * The alert decision. Two records, both bounded:
 * - the match table holds one item per binary (SHA-256) with the (rule, fingerprint) pairs
 *   already alerted on (`AlertedRules`), whatever the number of objects holding the binary;
 * - the coverage ledger's item of each object holds `MatchAlertSha256`: the binary this object
 *   was already alerted on (or recorded for) as a matching copy.
 * An alert goes out when the object is a new copy of a matching binary (first match, new key),
 * or when a (rule, fingerprint) pair is new for the binary (a new or changed rule). Exactly one
 * analyzer claims the alert (a conditional write with an expiry), publishes, and only then
 * records it as sent; a failed publish releases the claim, and a process that dies while holding
 * it loses it when it expires, so the retried message alerts. A delivery that finds a live claim
 * fails with AlertInFlightError carrying the time left on the claim: its message is retried right
 * after the expiry. Nobody can tell a dead holder from a slow one before that (on AWS or locally),
 * so taking a live claim over could alert twice; waiting for the expiry cannot. The holder
 * therefore renews its claim while it publishes and records (every third of the claim time): a
 * slow holder (a publish or a throttled commit outlasting the claim time, possible with
 * lambda_analyze_timeout_sec above it) still holds it when it records the alert, and a holder that
 * died (a killed worker, a killed stack) renews nothing, so its object's alert is delayed by at
 * most the claim time. The claim itself (take, renew, release, expiry, its conditions) is
 * alert-claim.ts.
 */

export interface MatchTables {
  matches: string;
  ledger: string;
}

/** What one analysis of a matching object contributes to the alert decision. */
export interface MatchRecord {
  sha256: string;
  md5: string;
  object: S3ObjectRef;
  /** Every matched rule (non-empty). */
  rules: MatchedRule[];
  /** Rules that matched inside the object: where (path inside it) and the member's SHA-256. */
  memberMatches?: { ruleId: string; memberPath: string; memberSha256: string }[];
}

export type MatchReason =
  | 'first match'
  | 'new object'
  | 'new rule'
  | 'changed rule'
  | 'already known'
  | 'alerted by a duplicate delivery';

export interface MatchDecision {
  alert: boolean;
  /** Why (not) alert, for the logs. */
  reason: MatchReason;
  /** `rule@fingerprint` pairs this alert is the first for (empty for a new copy of known rules). */
  newRules: string[];
}

export interface RecordMatchOptions {
  /** Clock (epoch ms); tests move it to expire claims. */
  now?: () => number;
  /** How long a claim protects an alert in flight without a renewal (default 60 s, well above
   * one SNS publish). */
  claimMs?: number;
  /** How often the holder renews its claim (default a third of `claimMs`). */
  renewEveryMs?: number;
}

const DEFAULT_CLAIM_MS = 60_000;

interface BinaryState {
  /** Whether any rule alerted on this binary (its item can exist without: delta results). */
  alertedBefore: boolean;
  alerted: Set<string>;
}

interface ObjectState {
  alertedSha256?: string;
}

const ledgerKey = (object: S3ObjectRef): Record<string, AttributeValue> => ({
  Bucket: { S: object.bucket },
  Key: { S: object.key },
});
const matchKey = (sha256: string): Record<string, AttributeValue> => ({ SHA256: { S: sha256 } });

async function readBinary(
  dynamo: DynamoDBClient,
  table: string,
  sha256: string,
): Promise<BinaryState> {
  const { Item } = await dynamo.send(
    new GetItemCommand({
      TableName: table,
      Key: matchKey(sha256),
      ProjectionExpression: 'SHA256, AlertedRules',
      ConsistentRead: true,
    }),
  );
  const alerted = new Set(Item?.AlertedRules?.SS ?? []);
  return { alertedBefore: alerted.size > 0, alerted };
}

async function readObject(
  dynamo: DynamoDBClient,
  table: string,
  object: S3ObjectRef,
): Promise<ObjectState> {
  const { Item } = await dynamo.send(
    new GetItemCommand({
      TableName: table,
      Key: ledgerKey(object),
      ProjectionExpression: 'MatchAlertSha256',
      ConsistentRead: true,
    }),
  );
  return { alertedSha256: Item?.MatchAlertSha256?.S };
}

function decide(record: MatchRecord, binary: BinaryState, object: ObjectState): MatchDecision {
  const pairs = record.rules.map(alertedRule);
  const newRules = [...new Set(pairs.filter((pair) => !binary.alerted.has(pair)))].sort();
  const objectKnown = object.alertedSha256 === record.sha256;
  if (!binary.alertedBefore) return { alert: true, reason: 'first match', newRules };
  if (newRules.length > 0) {
    const knownIds = new Set([...binary.alerted].map((pair) => parseAlertedRule(pair).id));
    const changed = newRules.some((pair) => knownIds.has(parseAlertedRule(pair).id));
    return { alert: true, reason: changed ? 'changed rule' : 'new rule', newRules };
  }
  if (!objectKnown) return { alert: true, reason: 'new object', newRules };
  return { alert: false, reason: 'already known', newRules };
}

/** Records the alert as sent: the binary's pairs, then the object as a known copy. */
async function commitAlert(
  dynamo: DynamoDBClient,
  tables: MatchTables,
  record: MatchRecord,
  decision: MatchDecision,
  claim: Claim,
  now: number,
): Promise<void> {
  const ownsBinaryClaim = claim.table === tables.matches;
  // The same content holds the same members, so the first alert's list stands for the binary.
  const members = (record.memberMatches ?? []).map((m): AttributeValue => ({
    M: {
      RuleId: { S: m.ruleId },
      MemberPath: { S: storedMemberPath(m.memberPath) },
      MemberSHA256: { S: m.memberSha256 },
    },
  }));
  // A new copy of a binary whose rules were all alerted already changes only its ledger item.
  if (ownsBinaryClaim || decision.newRules.length > 0 || decision.reason === 'first match')
    await dynamo.send(
      new UpdateItemCommand({
        TableName: tables.matches,
        Key: matchKey(record.sha256),
        UpdateExpression:
          'ADD AlertedRules :pairs ' +
          'SET MD5 = if_not_exists(MD5, :md5), FirstMatchedAt = if_not_exists(FirstMatchedAt, :at), ' +
          'LastAlertAt = :at' +
          (members.length > 0 ? ', MatchedMembers = if_not_exists(MatchedMembers, :members)' : '') +
          (ownsBinaryClaim ? ' REMOVE AlertClaimToken, AlertClaimExpiresAt' : ''),
        ExpressionAttributeValues: {
          ':pairs': { SS: [...new Set(record.rules.map(alertedRule))] },
          ':md5': { S: record.md5 },
          ':at': { S: new Date(now).toISOString() },
          ...(members.length > 0 ? { ':members': { L: members } } : {}),
        },
      }),
    );
  if (ownsBinaryClaim) return;
  await dynamo.send(
    new UpdateItemCommand({
      TableName: tables.ledger,
      Key: ledgerKey(record.object),
      UpdateExpression: 'SET MatchAlertSha256 = :sha REMOVE AlertClaimToken, AlertClaimExpiresAt',
      ExpressionAttributeValues: { ':sha': { S: record.sha256 } },
    }),
  );
}

/**
 * Decides whether a matching object alerts and, if so, calls `publish` exactly once while holding
 * the claim on that alert; the alert is recorded as sent only after `publish` resolved. Throws
 * what `publish` threw (the claim released), or AlertInFlightError when another delivery holds
 * the claim right now.
 */
export async function recordMatch(
  dynamo: DynamoDBClient,
  tables: MatchTables,
  record: MatchRecord,
  publish: (decision: MatchDecision) => Promise<void>,
  options: RecordMatchOptions = {},
): Promise<MatchDecision> {
  const now = options.now ?? Date.now;
  const [binary, object] = await Promise.all([
    readBinary(dynamo, tables.matches, record.sha256),
    readObject(dynamo, tables.ledger, record.object),
  ]);
  const decision = decide(record, binary, object);
  if (!decision.alert) return decision;

  // A new copy is claimed on its ledger item (copies never wait for each other); new rules on a
  // known copy are claimed on the binary, so one of its many known copies alerts.
  const newCopy = object.alertedSha256 !== record.sha256;
  const claim: Claim = newCopy
    ? { table: tables.ledger, key: ledgerKey(record.object), token: randomUUID() }
    : { table: tables.matches, key: matchKey(record.sha256), token: randomUUID() };
  const claimMs = options.claimMs ?? DEFAULT_CLAIM_MS;
  const claimed = await takeClaim(
    dynamo,
    claim,
    now(),
    claimMs,
    newCopy ? stillNewCopy(record.sha256) : stillNewRules(decision.newRules),
  );
  if (!claimed) {
    // Someone else finished this alert meanwhile, or holds it right now.
    const [binaryNow, objectNow, expiresAt] = await Promise.all([
      readBinary(dynamo, tables.matches, record.sha256),
      readObject(dynamo, tables.ledger, record.object),
      claimExpiry(dynamo, claim),
    ]);
    if (!decide(record, binaryNow, objectNow).alert) {
      return { alert: false, reason: 'alerted by a duplicate delivery', newRules: [] };
    }
    // Retried when the claim expires (within the claim time, as its holder renews it), in a new
    // message (requeue.ts); without a readable expiry (released meanwhile), retry soon.
    const retryAfterMs = Math.min(claimMs, Math.max(1000, (expiresAt ?? 0) - now()));
    throw new AlertInFlightError(
      `another analysis holds the alert for ${record.sha256} for ${Math.ceil(retryAfterMs / 1000)} s more; retrying then`,
      retryAfterMs,
    );
  }
  const release = holdClaim(dynamo, claim, now, claimMs, options.renewEveryMs ?? claimMs / 3);
  try {
    try {
      await publish(decision);
    } catch (error) {
      await releaseClaim(dynamo, claim).catch(() => undefined); // else it expires
      throw error;
    }
    await recordSent(
      () => commitAlert(dynamo, tables, record, decision, claim, now()),
      claimMs / 2,
    );
  } finally {
    release(); // a renewal after the commit finds the claim gone and changes nothing
  }
  return decision;
}

/**
 * Records an alert SNS already accepted. Giving up here would make the retried message alert
 * again once the claim expires, so a throttled or failing write is tried again for up to
 * `withinMs` (half the claim) before the error goes up.
 */
async function recordSent(write: () => Promise<void>, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (let delayMs = 200; ; delayMs = Math.min(delayMs * 2, 5000)) {
    try {
      return await write();
    } catch (error) {
      if (Date.now() + delayMs > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}
