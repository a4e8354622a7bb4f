"""`kubectl mesh analyze`: Istio configuration analysis with istioctl analyze's messages."""
