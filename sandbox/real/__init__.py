"""The sandbox on real components built from their Go modules (scripts/real_components.sh)."""
