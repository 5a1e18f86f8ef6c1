"""What the AWS backends share: clients from backend URLs, provisioning, packaging for Lambda."""
