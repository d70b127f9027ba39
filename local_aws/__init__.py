"""The local stand-in for AWS: an embedded moto server, the local mirror of what Terraform
creates, and AWS-like test doubles (a DynamoDB endpoint with capacity and faults)."""
