variable "function_name" {
  description = "Name of the Lambda function (also names its role, log group and alarms)."
  type        = string
}

variable "description" {
  description = "Description of the Lambda function."
  type        = string
}

variable "filename" {
  description = "Path of the deployment zip built by `manage.ts build`."
  type        = string
}

variable "source_code_hash" {
  description = "Base64 SHA-256 of the zip, so a changed zip publishes a new version."
  type        = string
}

variable "handler" {
  description = "Entry point inside the zip."
  type        = string
  default     = "index.handler"
}

variable "runtime" {
  description = "Lambda runtime, e.g. nodejs22.x."
  type        = string
}

variable "memory_size_mb" {
  description = "Memory of the function in MB."
  type        = number
}

variable "timeout_sec" {
  description = "Timeout of one invocation in seconds."
  type        = number
}

variable "ephemeral_storage_mb" {
  description = "Size of /tmp in MB."
  type        = number
  default     = 512
}

variable "reserved_concurrent_executions" {
  description = "Reserved concurrency; -1 means no reservation."
  type        = number
  default     = -1
}

variable "environment_variables" {
  description = "Environment of the function (what its src/deps.ts parses)."
  type        = map(string)
}

variable "policy_json" {
  description = "Inline IAM policy with exactly the actions and resources the function's code calls."
  type        = string
}

variable "log_retention_days" {
  description = "Days the function's CloudWatch logs are kept."
  type        = number
}

variable "alarm_actions" {
  description = "ARNs notified when the Errors or Throttles alarm fires (e.g. an SNS topic)."
  type        = list(string)
}

variable "errors_alarm_percent" {
  description = "Share of failed invocations (percent) in a 5-minute period that counts as breaching."
  type        = number
  default     = 5
}

variable "errors_alarm_periods" {
  description = "Consecutive breaching 5-minute periods that fire the Errors alarm."
  type        = number
  default     = 3
}

variable "throttles_alarm_periods" {
  description = "Consecutive 5-minute periods with throttled invocations that fire the Throttles alarm."
  type        = number
  default     = 3
}

variable "async_max_retry_attempts" {
  description = "Retries of a failed asynchronous invocation (0-2; Lambda's default is 2)."
  type        = number
  default     = 2
}

variable "async_max_event_age_seconds" {
  description = "Seconds an asynchronous event may wait to start before Lambda drops it (60-21600)."
  type        = number
  default     = 21600
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}
