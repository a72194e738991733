terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.19 is the first provider that accepts nodejs24.x (older 6.x and 5.x reject runtimes
      # newer than they know); config.ts offers only the runtimes listed in LAMBDA_RUNTIMES.
      version = "~> 6.19"
    }
  }
}
