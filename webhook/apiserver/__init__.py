"""kube-apiserver configuration for our issuer: the MicroK8s args file and other distributions."""
