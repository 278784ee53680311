"""Optional integrations with other tools (cdk8s). Each imports its tool lazily."""
