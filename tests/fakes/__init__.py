"""Local servers that stand in for SaaS CRM APIs in the tests and benchmarks."""
