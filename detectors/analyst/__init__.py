"""What analysts read: recommendations, the HTML report, the investigation notebook, terminal views."""
