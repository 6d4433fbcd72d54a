"""inference_thresholds_agent."""
