# BinaryAlert configuration: the only file you edit to configure a deployment.
# Every manage.ts command and the Terraform in terraform/ read it; `manage.ts configure` rewrites
# aws_region and name_prefix in place and keeps these comments. Values are validated when a
# command loads them; an error names the setting and its expected format.

##### General #####

# AWS region to deploy into, e.g. "us-east-1".
aws_region = "us-east-1"

# Prefix of every resource name: "<name_prefix>_binaryalert_<part>". Lowercase letters, digits
# and single underscores, starting with a letter (it also names the S3 bucket, with '_' -> '.':
# "<name_prefix with dots>.binaryalert-binaries.<aws_region>", which must be globally unique).
name_prefix = "myorg"

# Tags added to every resource that supports them (map of string to string).
tags = {
  Application = "BinaryAlert"
}

##### Lambda functions #####

# Lambda runtime of all three functions: a Node.js LTS that Lambda supports, "nodejs22.x" or
# "nodejs24.x" (nodejs20.x is accepted but past its end of life). The bundles are built for
# Node 20 syntax, so any of these runs them.
lambda_runtime = "nodejs22.x"

# Analyzer: downloads, hashes and YARA-scans binaries. Memory (MB, 128-10240; more memory also
# means more vCPUs: about one per 1769 MB), timeout (seconds, 1-900), and /tmp size (MB,
# 512-10240; a file is streamed to /tmp before it is scanned).
lambda_analyze_memory_mb            = 1024
lambda_analyze_timeout_sec          = 300
lambda_analyze_ephemeral_storage_mb = 1024

# What invokes the analyzer: "dispatcher" (a scheduled dispatcher Lambda long-polls the queue and
# invokes analyzers asynchronously) or "sqs" (Lambda's SQS event source mapping polls the queue
# and invokes the analyzer with batches of up to 10 messages; no dispatcher runs).
analyzer_trigger = "dispatcher"

# Most analyzer invocations running at once (2 or more): the dispatcher never holds more
# invocation slots than this, the event source mapping never runs more batches. Caps load and
# cost. 8 fits a new AWS account, whose Lambda concurrency quota may be as low as 10 (the
# dispatcher and batcher need room too); with the usual quota of 1,000, raise it (e.g. 100).
lambda_analyze_concurrency_limit = 8

# Concurrency reserved for the analyzer, so other functions in the account cannot starve it.
# -1 = no reservation (works in every account). AWS refuses a reservation that leaves less than
# 100 (or, in a new account, its whole quota) unreserved, so reserve only with a raised quota;
# when set, it must be at least lambda_analyze_concurrency_limit.
lambda_analyze_reserved_concurrency = -1

# Dispatcher (analyzer_trigger = "dispatcher" only): polls the queue and invokes analyzers.
# Memory (MB) and timeout (seconds).
lambda_dispatch_memory_mb   = 128
lambda_dispatch_timeout_sec = 55

# How often the dispatcher runs (minutes, 1-1440).
lambda_dispatch_frequency_minutes = 1

# Most analyzer invocations one dispatcher run may start (1 or more); the free slots of
# lambda_analyze_concurrency_limit bound them too.
lambda_dispatch_limit = 500

# SQS long-poll wait per receive call of the dispatcher (seconds, 0-20).
lambda_dispatch_wait_time_seconds = 10

# Receive loops one dispatcher runs concurrently (1-50).
lambda_dispatch_receive_concurrency = 4

# Batcher: lists the bucket for retroactive analysis. Memory (MB) and timeout (seconds).
lambda_batch_memory_mb   = 128
lambda_batch_timeout_sec = 300

# S3 objects per SQS message the batcher sends during retroactive analysis (1-100).
objects_per_retro_message = 5

# Days Lambda logs are kept in CloudWatch Logs (one of CloudWatch's allowed values: 1, 3, 5,
# 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653).
lambda_log_retention_days = 14

##### Analysis #####

# Files larger than this (MB) are not downloaded; they are logged and counted as skipped.
# Must be smaller than lambda_analyze_ephemeral_storage_mb.
max_file_size_mb = 500

# YARA scan timeout per file (seconds); must be less than lambda_analyze_timeout_sec. It is also
# the time budget for scanning inside the file's containers (cut short when the invocation itself
# is about to time out); what is left is reported unscanned (time-limit).
scan_timeout_seconds = 60

# Containers are recognized by content and every member is scanned too, recursively: zip (jar,
# apk, docx/xlsx/pptx, odt), 7z, rar, cab, iso, cpio, ar, tar; gzip, bzip2, xz, lzma, zstd, lz4
# and compress streams; PDF FlateDecode streams. Content a bound stops is listed as unscanned
# with a reason, the verdict is "partial" and the UnscannedContent metric counts it.
#
# Passwords tried, in turn, on encrypted zip and 7z archives, at any depth (the
# convention for shared malware samples).
archive_passwords = ["infected", "malware", "virus"]

# Container levels opened below an uploaded file (a.7z!b.tar.gz!c.zip!x.exe is 3 levels).
archive_max_depth = 5

# Members scanned per file, all levels together (member-limit).
archive_max_members = 10000

# MB extracted per file, all levels together (size-limit). Members over 16 MB go through /tmp:
# max_file_size_mb + archive_max_expanded_mb must not exceed lambda_analyze_ephemeral_storage_mb.
archive_max_expanded_mb = 512

# A container expanding to more than this many times its compressed size (past 8 MB) is a
# decompression bomb: the rest of it is skipped (ratio-limit). 0 turns the check off.
archive_max_ratio = 250

# Also publish files that match no rule to a separate SNS topic (true/false).
enable_negative_match_alerts = false

# Other buckets the analyzer may read (for direct invocations), as IAM resource ARNs,
# e.g. ["arn:aws:s3:::my-other-bucket/*"]. Empty list = only the BinaryAlert bucket.
external_s3_bucket_resources = []

# KMS keys of those buckets' SSE-KMS objects, as key ARNs, e.g.
# ["arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]: the analyzer
# may decrypt with them only through S3. Empty list = none (SSE-S3 objects need no key).
external_kms_key_resources = []

##### Queue #####

# How long an unprocessed message stays in the analyzer queue (minutes, 1-20160 = 14 days).
sqs_retention_minutes = 1440

# Receives of one message before it moves to the dead-letter queue (1-1000).
max_receives = 5

##### S3 #####

# Bucket for the binaries bucket's access logs. "" = create "<prefix>.binaryalert-s3-access-logs.<region>".
s3_log_bucket = ""

# Key prefix of the access logs inside the log bucket (may be "").
s3_log_prefix = "s3-access-logs/"

# Days access logs are kept in a created log bucket (1 or more).
s3_log_expiration_days = 90

# Days a replaced or deleted binary's old version is kept before it expires (1 or more).
s3_noncurrent_version_expiration_days = 30

# Allow `terraform destroy` to delete the buckets while they still hold objects (true/false).
# When false, `manage.ts destroy` asks before emptying the binaries bucket.
force_destroy = false

##### DynamoDB #####

# Capacity mode of the match-history and verdict-ledger tables (and the ledger's indexes):
# "PAY_PER_REQUEST" or "PROVISIONED".
dynamo_billing_mode = "PAY_PER_REQUEST"

# Read/write capacity units, used only when dynamo_billing_mode = "PROVISIONED" (1 or more).
dynamo_read_capacity  = 10
dynamo_write_capacity = 5

# Days each object's verdict stays in the verdict ledger (`manage.ts results`), 0 = forever.
# The ledger costs one write per analyzed object, every time it is analyzed (retro-analyses
# included): 1 write unit per item of up to 1 KB (matched items with rule details 1-3), plus index
# writes for matched/skipped/failed/partial verdicts and when an object's content changes. On
# demand that is roughly $1 per million objects analyzed (us-east-1, 2025 prices); storage is
# about 1 KB per object. A TTL bounds the storage of buckets whose objects come and go.
verdict_ttl_days = 0

##### Alerts and alarms #####

# Email addresses subscribed to YARA match alerts (each must confirm the subscription).
yara_match_alert_emails = []

# Email addresses subscribed to negative-match alerts (only with enable_negative_match_alerts).
negative_match_alert_emails = []

# Existing SNS topic ARN for CloudWatch alarms. "" = create "<prefix>_binaryalert_metric_alarms".
metric_alarm_sns_topic_arn = ""

# Email addresses subscribed to a created metric alarm topic.
metric_alarm_emails = []

# Alarm when no binary was analyzed for this many minutes (1-1440).
expected_analysis_frequency_minutes = 30

# Alarm when the oldest message in the analyzer queue is older than this (minutes, 1 or more).
queue_age_alarm_minutes = 30

# Alarm when the analyzer reports fewer compiled YARA rules than this (0 or more; 0 = off).
yara_rules_min_count = 1

# Rules releases (`manage.ts deploy-rules`): each analyzer checks the rules bucket for a newer
# release at most this often (seconds, 0-3600), with one conditional GET of a small manifest;
# `deploy-rules` waits this long before re-analyzing, so every analysis after that uses the new
# rules. The local stack checks every second.
rules_refresh_seconds = 60

# Content prefilter (true/false): each full analysis also records the byte trigrams of what it
# scanned (a 0.5-64 KB bitmap on the object's ledger item; about 9% more analysis CPU), so that a
# re-scan after a rules release skips reading objects the new rules cannot match. false: no
# signatures are recorded, and every re-scan after a release reads every object.
content_prefilter = true
