#!/bin/sh
# The seed authorizer as a Lambda custom-runtime bootstrap.
# NODE: the node binary (lambda-bench clears the environment, so PATH may be unset).
cd "$(dirname "$0")" && exec "${NODE:-node}" runtime.mjs ./authorizer.mjs
