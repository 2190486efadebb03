"""Training, small parts first: losses, stages, checkpoints, the inner loops, one run, comparisons.

    recipe.py      the optimiser settings a run leaves unset: the papers' or the small-world ones
    config.py      TrainConfig: everything a run needs besides the model's own config
    losses.py      the CTR loss and the generic intent KL
    schedule.py    Stage (parameter groups, rates, loss, epochs), the default one-stage schedule
    checkpoint.py  RUN/checkpoint/ written atomically every epoch, read for resume and scoring
    resume.py      what --resume accepts: the checkpoint's settings, a changed one refused
    loop.py        one epoch, scoring a split, the test metrics
    checks.py      the warnings of a run that did not learn (constant scores, AUC within noise)
    trainer.py     `train`: per seed, build the registered model, run its stages, score
    summary.py     mean and std over seeds, the comparison table
    compare.py     `compare`: several models and ablations, in this process or several

The trainer knows no model by name: it reads a model's class, config, schedule and cost from
`daian.models.registry` (DAIAN's three stages live next to DAIAN, `daian.models.daian_stages`).
The click label and intent reach only the losses; at evaluation nothing but features is read.
"""
