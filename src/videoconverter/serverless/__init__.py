"""Serverless workers: the AWS Lambda handlers and the packaging of their deployment artifacts."""
