# One dashboard with every metric BinaryAlert and its AWS resources report.

locals {
  # Widgets of BinaryAlert's own metrics, each of the metrics of one emitting function (its
  # `service` dimension, locals.tf).
  custom_metric_widgets = [
    { title = "Binaries", emitter = "analyzer", metrics = ["AnalyzedBinaries", "MatchedBinaries", "SkippedBinaries", "AnalysisErrors"], stat = "Sum" },
    { title = "Not (fully) scanned", emitter = "analyzer", metrics = ["SkippedBinaries", "PartialBinaries", "AnalysisErrors"], stat = "Sum" },
    { title = "YARA rules", emitter = "analyzer", metrics = ["YaraRules"], stat = "Minimum" },
    { title = "Latency (ms)", emitter = "analyzer", metrics = ["S3DownloadLatency", "ScanLatency"], stat = "Average" },
    { title = "Retroactive enqueue failures", emitter = "batcher", metrics = ["BatchEnqueueFailures"], stat = "Sum" },
  ]

  dashboard_widgets = concat(
    [
      for metric in ["Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"] : {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title   = "Lambda ${metric}"
          region  = var.aws_region
          stat    = metric == "Duration" ? "Average" : (metric == "ConcurrentExecutions" ? "Maximum" : "Sum")
          period  = 300
          metrics = [for label, function_name in local.functions : ["AWS/Lambda", metric, "FunctionName", function_name, { label = label }]]
        }
      }
    ],
    [
      for widget in local.custom_metric_widgets : {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title   = widget.title
          region  = var.aws_region
          stat    = widget.stat
          period  = 300
          metrics = [for metric in widget.metrics : [local.metric_namespace, metric, "service", local.functions[widget.emitter]]]
        }
      }
    ],
    [
      {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title  = "Analyzer queue"
          region = var.aws_region
          period = 300
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.analyzer.name, { stat = "Maximum", label = "visible" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", aws_sqs_queue.analyzer.name, { stat = "Maximum", label = "in flight" }],
            ["AWS/SQS", "NumberOfMessagesSent", "QueueName", aws_sqs_queue.analyzer.name, { stat = "Sum", label = "sent" }],
            ["AWS/SQS", "NumberOfMessagesDeleted", "QueueName", aws_sqs_queue.analyzer.name, { stat = "Sum", label = "deleted" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.dead_letter.name, { stat = "Maximum", label = "dead letters" }],
          ]
        }
      },
      {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title  = "Age of oldest queued message (s)"
          region = var.aws_region
          period = 300
          stat   = "Maximum"
          metrics = [
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.analyzer.name],
          ]
        }
      },
      {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title  = "Match table"
          region = var.aws_region
          period = 300
          stat   = "Sum"
          metrics = [
            for metric in ["ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits", "ReadThrottleEvents", "WriteThrottleEvents"] :
            ["AWS/DynamoDB", metric, "TableName", aws_dynamodb_table.matches.name]
          ]
        }
      },
      {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title  = "Verdict ledger"
          region = var.aws_region
          period = 300
          stat   = "Sum"
          metrics = [
            for metric in ["ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits", "ReadThrottleEvents", "WriteThrottleEvents"] :
            ["AWS/DynamoDB", metric, "TableName", aws_dynamodb_table.verdicts.name]
          ]
        }
      },
      {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title  = "Alerts"
          region = var.aws_region
          period = 300
          stat   = "Sum"
          metrics = [
            for topic in compact([aws_sns_topic.yara_match_alerts.name, try(aws_sns_topic.no_yara_match_alerts[0].name, "")]) :
            ["AWS/SNS", "NumberOfMessagesPublished", "TopicName", topic]
          ]
        }
      },
    ],
  )
}

resource "aws_cloudwatch_dashboard" "binaryalert" {
  dashboard_name = local.names.dashboard
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
