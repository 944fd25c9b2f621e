"""The whole suite runs the domain the way the command line does: compiled when a build matches the sources
(`CXJ_NATIVE=0` for plain Python), chosen before any test module imports it."""

from streams.runtime.native import use_compiled

use_compiled()
