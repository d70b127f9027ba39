terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.40"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.4"
    }
  }
}

# Region, account and credentials come from the standard AWS settings (AWS_REGION,
# AWS_PROFILE, …) of whoever runs terraform; nothing here pins them.
provider "aws" {
  default_tags {
    tags = merge({ project = "dynamo-ingest", stack = var.name_prefix }, var.tags)
  }
}
