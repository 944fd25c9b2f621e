"""cx-journeys: customer touchpoints in, stitched journeys, experience scores and churn alerts out."""

__version__ = "0.1.0"
