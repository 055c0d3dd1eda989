"""Malformed `trainkit train` argument lists: every one must be refused in one line, exit 2, no run directory.

The issue's cases first, then systematic mutations of the default config: typos, wrong types,
out-of-range values, broken syntax, unicode, empty values, deletions, `+`/`++` misuse, sweeps
and flags. Each entry is the argument list after `trainkit train`.
"""

from __future__ import annotations

ISSUE = [
    ["seed=18446744073709551616"],
    ["scheduler=step", "scheduler.step_size=0"],
    ["model.in_shape=[1,2]"],
    ["~data.dataset"],
    ["~data.memory_budget_mb"],
    ["~task.out_features"],
    ["--resolve"],
    ["+trainer.fast_dev_run=true"],  # since issue 15 real keys: refused for their values
    ["+trainer.limit_train_batches=0"],
    ["model.hidden=[-1]"],
    ["model.activation=foo"],
    ["trainer.monitor=val_foo"],
    ["optim=adam", "optim.betas=[0.9]"],
    ["device.type=cuda"],
    ["device=cuda"],
    ["-p", "model", "trainer.epochs=-1"],
    ["--package", "model", "optim.lr=-1"],
    ["-m", "optim=glob(*)", "trainer.epochs=-1"],
    ["-m", "optim.lr=glob(*)", "trainer.epochs=-1"],
    ["hydra.mode=MULTIRUN", "trainer.epochs=-1"],
    ["hydra.mode=MULTIRUN", "optim.lr=0.1,-1"],
    ["data.root=données"],
    ["data.augment=[Nope]"],
    ["data.augment=RandomCrop"],
    ["data.augment=[{name:RandomCrop}]"],
    ["data.mixup_alpha=-1"],
    ["data=npy", "data.x_path=nowhere.npy", "data.y_path=nowhere_y.npy"],
    ["data=hf", "data.path=nowhere"],
    ["data=parquet", "data.path=nowhere.parquet"],
    ["optim.lr='0.1"],
    ["optim.lr=0.1'"],
    ["data=csv", "data.path=a b"],
    ["+data=csv"],
    ["data.path=" + "x" * 300, "data=csv"],
    ["hydra.run.dir=" + "x" * 300],
    ["seed=${seed}"],
    ["trainer.epochs=${trainer.epochs}"],
    ["model._target_=os.system"],
    ["-m", "hydra/launcher=nosuch", "optim.lr=0.1,0.01"],
    ["-m", "hparams_search=nosuch"],
    ["optim.lr=interval(0.1,1)"],
    ["-m", "optim.lr=interval(0.001,0.1)"],
    ["model.hidden=" + "[" * 600 + "1" + "]" * 600],  # Hydra: maximum recursion depth exceeded
    ["seed=${trainer.epochs}", "trainer.epochs=${seed}"],
    ["hydra.run.dir=${hydra.run.dir}"],
    # issue 16: models by name and fine-tuning
    ["model=torchvision", "model.name=resnet5"],
    ["model=torchvision", "model.name=squeezenet1_1"],  # digits' 8x8 images are too small for it
    ["model=cnn", "model.pretrained=no_such_weights.pt"],
    ["model=cnn", "model.freeze=[feat.*]"],
    ["model=cnn", "trainer.unfreeze_at_epoch=2"],
    ["trainer.unfreeze_at_epoch=0"],
    ["model.pretrained_strict=3"],
]

TYPOS = [
    ["trainer.epochz=3"], ["optim.lrr=0.1"], ["data.batchsize=32"], ["data.batch-size=32"], ["seeds=1"],
    ["trainer.early_stoping.patience=2"], ["device.typ=cpu"], ["model.hiden=[64]"], ["scheduler.gama=0.5"],
    ["trainer.monitr=val_loss"], ["model=mlpp"], ["optim=adamm"], ["data=digitz"], ["scheduler=cosin"],
    ["loss=cross_entropi"], ["task=clasification"], ["device=gpu"], ["logger=tensorbord"], ["trainer=fast"],
    ["experiment=mnist"], ["Optim.lr=0.1"], ["OPTIM=adam"], ["optim.LR=0.1"], ["metrics.topk=[1]"],
]

WRONG_TYPES = [
    ["trainer.fast_dev_run=true"], ["trainer.fast_dev_run=1.5"], ["trainer.limit_train_batches=all"],
    ["trainer.limit_val_batches=true"], ["trainer.overfit_batches=few"], ["trainer.ema=0.999"],
    ["trainer.ema.decay=high"], ["trainer.swa=3"], ["trainer.swa.start_epoch=1.5"], ["trainer.profile=yes"],
    ["trainer.profile=1"], ["trainer.profile_schedule.active=x"], ["optim.lr=autoo"], ["optim.lr=AUTO"],
    ["tune.steps=many"], ["tune.max_lr=big"], ["+trainer.fast_dev_run_=2"], ["trainer.fastdevrun=2"],
    ["seed=abc"], ["seed=1.5"], ["seed=true"], ["seed=[1]"], ["trainer.epochs=two"], ["trainer.epochs=1.5"],
    ["trainer.epochs=true"], ["trainer.epochs=[1,2]"], ["trainer.accumulate=x"], ["trainer.grad_clip=yes"],
    ["trainer.log_every_n_steps=0.5"], ["trainer.monitor_mode=up"], ["trainer.progress=fancy"],
    ["trainer.compile=maybe"], ["trainer.deterministic=2"], ["trainer.checkpoint_every_n_steps=x"],
    ["trainer.on_nan=ignore"], ["trainer.strategy=fsdp"], ["data.batch_size=big"], ["data.batch_size=3.5"],
    ["data.eval_batch_size=null"], ["data.num_workers=many"], ["data.val_fraction=half"], ["data.shuffle=sometimes"],
    ["data.drop_last=1"], ["data.pin_memory=never"], ["data.loader=disk"], ["data.sampler=stratified"],
    ["data.memory_budget_mb=lots"], ["optim.lr=fast"], ["optim.lr=[0.1]"], ["optim.lr=true"], ["optim.momentum=high"],
    ["optim.weight_decay=none"], ["device.type=tpu"], ["device.index=first"], ["device.precision=64"],
    ["device.precision=fp8"], ["scheduler.interval=batch"], ["metrics.top_k=five"], ["metrics.average=mean"],
    ["metrics.threshold=high"], ["metrics.enabled=sure"], ["trainer.early_stopping=3"], ["model.hidden=wide"],
    ["model.hidden=[a,b]"], ["model.dropout=lots"], ["model.activation=[relu]"], ["trainer.monitor=1"],
    ["optim=adam", "optim.betas=0.9"], ["optim=adam", "optim.betas=[a,b]"], ["model.hidden=[1.5]"],
]

OUT_OF_RANGE = [
    ["seed=-1"], ["seed=99999999999999999999999"], ["trainer.epochs=0"], ["trainer.epochs=-1"],
    ["trainer.accumulate=0"], ["trainer.grad_clip=0"], ["trainer.grad_clip=-1"], ["trainer.grad_clip=nan"],
    ["trainer.log_every_n_steps=0"], ["trainer.checkpoint_every_n_steps=0"], ["data.batch_size=0"],
    ["data.batch_size=-8"], ["data.eval_batch_size=0"], ["data.num_workers=-1"], ["data.val_fraction=1"],
    ["data.val_fraction=-0.1"], ["data.test_fraction=1.5"], ["data.memory_budget_mb=0"], ["data.memory_budget_mb=-5"],
    ["optim.lr=0"], ["optim.lr=-0.1"], ["optim.lr=nan"], ["optim.lr=inf"], ["optim.momentum=-0.5"],
    ["optim.weight_decay=-1"], ["device.index=-1"], ["metrics.top_k=0"], ["metrics.top_k=[0,5]"],
    ["metrics.threshold=0"], ["metrics.threshold=1"], ["trainer.early_stopping.patience=0"],
    ["trainer.early_stopping.min_delta=-1"], ["model.hidden=[0]"], ["model.hidden=[64,-3]"], ["model.dropout=1.5"],
    ["model.dropout=-0.1"], ["optim=adam", "optim.betas=[1.5,0.9]"], ["optim=adam", "optim.betas=[0.9,0.999,0.5]"],
    ["optim=adam", "optim.eps=-1"], ["scheduler=step", "scheduler.step_size=-2"], ["scheduler=step", "scheduler.gamma=-1"],
    ["scheduler=step", "scheduler.gamma=0"], ["scheduler=cosine", "scheduler.T_max=0"],
    ["scheduler=multistep", "scheduler.milestones=[-1]"], ["scheduler=exponential", "scheduler.gamma=0"],
    ["model.in_shape=[0]"], ["model.in_shape=[-64]"], ["task.out_features=0"], ["task.out_features=-3"],
    ["data.val_fraction=0.6", "data.test_fraction=0.5"], ["model=cnn", "model.in_shape=[64]"],
    # issue 15: debug presets, averaging, profiler, the lr range test
    ["trainer.fast_dev_run=0"], ["trainer.fast_dev_run=-2"], ["trainer.limit_train_batches=0"],
    ["trainer.limit_train_batches=1.5"], ["trainer.limit_val_batches=-0.5"], ["trainer.limit_val_batches=0.0"],
    ["trainer.overfit_batches=0"], ["trainer.ema.decay=1"], ["trainer.ema.decay=0"], ["trainer.ema.decay=-0.5"],
    ["trainer.swa.start_epoch=0"], ["trainer.swa.lr=0"], ["trainer.swa.lr=-1"], ["trainer.swa.anneal_epochs=0"],
    ["trainer.profile_schedule.active=0"], ["trainer.profile_schedule.wait=-1"], ["tune.steps=5"], ["tune.min_lr=0"],
    ["tune.max_lr=-1"],
]

SYNTAX = [
    ["optim.lr=[0.1,"], ["optim.lr=]"], ["optim.lr={a:"], ["optim.lr="], ["=0.1"], ["="], ["optim.lr"],
    ["trainer.epochs==3"], ["optim.lr=\"0.1"], ["trainer.monitor='val_loss"], ["data=image_folder", "data.root=~/x y"],
    ["optim.lr=0.1 0.2"], ["optim.lr=${"], ["optim.lr=${nokey}"], ["optim.lr=${oc.env:NO_SUCH_VAR_XYZ}"],
    ["optim.lr=\\"], ["optim.lr=a=b"], ["optim.lr=(1"], ["optim.lr=1,"], ["model.hidden=[64,,64]"],
    ["trainer.epochs=3)"], ["optim..lr=0.1"], [".lr=0.1"], ["optim.=0.1"], ["optim.lr=???"],
]

UNICODE = [
    ["optim.lr=0.1é"], ["trainer.monitor=val_lóss"], ["ｍodel=mlp"], ["optim.lr=０.1"], ["data.root=/données/x"],
    ["trainer.epochs=３"], ["device.type=cpü"], ["optim=ádam"], ["optim.lr=1e-3\u200b"], ["trainer.progress=plain✓"],
]

EMPTY = [
    [""], [" "], ["model="], ["optim="], ["trainer.epochs="], ["seed="], ["device.type="], ["data.batch_size= "],
    ["trainer.monitor="], ["trainer.monitor_mode="],
]

DELETIONS = [
    ["~seed"], ["~trainer.epochs"], ["~trainer.monitor"], ["~data.batch_size"], ["~data.eval_batch_size"],
    ["~data.val_fraction"], ["~device.type"], ["~device.precision"], ["~model"], ["~optim"], ["~loss"],
    ["~task"], ["~scheduler"], ["~data"], ["~trainer"], ["~device"], ["~model._target_"], ["~optim._target_"],
    ["~loss._target_"], ["~task._target_"], ["~data.loader"], ["~nokey"], ["~optim.nokey"],
    ["~data.num_workers"], ["~data.shuffle"], ["~trainer.accumulate"],
]

PLUS_MISUSE = [
    ["+trainer.epochs=3"], ["+optim.lr=0.1"], ["+seed=1"], ["+model=cnn"], ["+optim=adam"], ["+nokey=1"],
    ["+data.nokey=1"], ["+optim.nokey=1"], ["+model.nokey=1"], ["++trainer.fast_dev_run=true"], ["++optim.nokey=1"],
    ["+trainer.limit_val_batch=1"], ["++data.nokey=2"], ["+device.nokey=1"], ["+loss.nokey=1"],
]

SWEEPS = [
    ["optim.lr=0.1,0.01"], ["optim=sgd,adam"], ["-m", "optim.lr=0.1,-1"], ["-m", "trainer.epochs=1,0"],
    ["-m", "optim=sgd,nosuch"], ["-m", "model=glob(zz*)"], ["-m", "optim.lr=range(0,3)"],
    ["-m", "data.batch_size=range(-2,2)"], ["-m", "optim.lr=choice(0.1,fast)"], ["-m", "trainer.epochz=1,2"],
    ["-m", "optim=glob(*)", "optim.lr=-1"], ["-m", "device.type=cpu,tpu"], ["-m", "optim.lr=0.1,"],
    ["--multirun", "seed=1,-1"], ["-m", "model=glob(*,exclude=*)"],
]

FLAGS = [
    ["--resolve", "trainer.epochs=1"], ["--nosuch"], ["--config-dir"], ["--config-dir", "no/such/dir"],
    ["-x"], ["--package"], ["-p"], ["--cfg", "nosuch"],
]

LAUNCHERS = [
    ["-m", "hydra/launcher=submitit_local", "optim.lr=0.1,0.01"],
    ["-m", "hydra/launcher=submitit_slurm", "optim.lr=0.1,0.01"],
    ["-m", "hydra/launcher=joblib", "optim.lr=0.1,0.01"],
    ["-m", "hparams_search=optuna"],
]

BAD_OVERRIDES: list[list[str]] = [
    *ISSUE, *TYPOS, *WRONG_TYPES, *OUT_OF_RANGE, *SYNTAX, *UNICODE, *EMPTY, *DELETIONS, *PLUS_MISUSE, *SWEEPS, *FLAGS,
]

#: Cases that must work (issue 18 item 5): `~` in a path value is the user's home.
GOOD_OVERRIDES: list[list[str]] = [["data=image_folder", "data.root=~/datasets"], ["data=csv", "data.path=~/t.csv"]]
