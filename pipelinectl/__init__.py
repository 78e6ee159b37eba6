"""pipelinectl: provision and operate an event-driven transaction pipeline on AWS."""

__version__ = "0.1.0"
