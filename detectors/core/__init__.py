"""What every stage shares: settings, the warehouse connection, SQL loading, the run lock."""
