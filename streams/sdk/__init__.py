"""The producer and subscriber SDK: what an application imports to send usage events to
tokenboard and to follow its ranking changes and alerts."""
