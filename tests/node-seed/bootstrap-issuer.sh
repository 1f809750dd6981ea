#!/bin/sh
# The seed issuer (login, refresh) as a Lambda custom-runtime bootstrap.
# NODE: the node binary (lambda-bench clears the environment, so PATH may be unset).
cd "$(dirname "$0")" && exec "${NODE:-node}" runtime.mjs ./issuer.mjs
