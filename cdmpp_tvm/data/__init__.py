"""Measured data: reading MetaSchedule databases, featurizing records, datasets."""
