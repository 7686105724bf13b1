"""Deployment files as vLLM workloads (`launcher check --from`): one module per format, none importing another;
preflight.py finds the workloads and checks them."""
