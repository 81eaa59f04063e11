"""irsa-webhook: IAM Roles for Service Accounts outside EKS."""

__version__ = "0.1.0"
