"""Matching: the rule schema shared by the stream matcher and the T+1 engine, and break classification."""
