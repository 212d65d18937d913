#!/usr/bin/env bash
# DSD100 recipe (the MIREX 2016 paper's own data): the MUSDB18 recipe's stages 0-4 on DSD100,
# configured by recipes/dsd100/conf.toml. Options as recipes/musdb18/run.sh.
exec "$(dirname "$0")/../musdb18/run.sh" --corpus dsd100 "$@"
