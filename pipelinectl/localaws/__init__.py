"""The embedded local AWS: moto plus what the pipeline needs from AWS that moto lacks.

Importing this package is cheap; moto is imported only by the modules that need it.
"""
