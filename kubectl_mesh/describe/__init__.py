"""`kubectl mesh describe`: a pod's or service's Istio configuration, as istioctl x describe."""
