"""Wall time of scoring cells at the real shape (C16 N5, 32×32 CIFAR-10) with default settings.

    python benchmarks/score_time.py 16 all     # batch size, kernel set

Prints the setup time, then each cell's wall time (the first includes compilation) and its primary score.
Run under ``/usr/bin/time -v`` for peak memory. Needs $NTKSCORE_DATA or ../shared/data.
"""
import sys
import time

from ntkscore.score import Scorer, ScoreSettings

B, kernels = int(sys.argv[1]), sys.argv[2]
t = time.time()
sc = Scorer(ScoreSettings(batch_size=B, kernels=kernels))
print("setup", time.time() - t, flush=True)
MIXED = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
LIGHT = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
HEAVY = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
for a in [MIXED, MIXED, LIGHT, HEAVY]:
    t = time.time()
    r = sc(a)
    print(a[:40], round(time.time() - t, 2), r.value, flush=True)
