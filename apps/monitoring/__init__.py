"""Model monitoring: drift statistics and SLO arithmetic (computational cores, no Django import)."""
