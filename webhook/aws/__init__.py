"""The AWS side of IRSA: the IAM OIDC provider, roles scoped to one ServiceAccount, thumbprints.

Documents are built by pure functions (policies), TLS lives in thumbprint, and every boto3 call
goes through calls.Call so that a dry run shows exactly what a real run sends.
"""
