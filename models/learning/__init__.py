"""From the event log to a trained model: dataset, LightFM fit, artifacts, schedule."""
