"""spade's runner for `py>`: calls `module.function`, `module.Class.method` or `module.Class` (its
`run` method) with arguments taken from the task's params by name, and reports what the code
stored, exported and generated through spade's operator protocol (docs/operators.md).

spade embeds this file and writes it next to the task log for every run. It provides the
`digdag` module of Digdag's Python API: `digdag.env.params`, `store`, `export`, `add_subtask`,
`set_state` and `subtask_config`.
"""

import collections
import importlib
import inspect
import json
import os
import sys
import types

PROTOCOL = 1
RUNNER = os.path.abspath(__file__)

# Secret values shorter than this are not masked: masking `a` everywhere would garble the log.
MIN_MASKED_LEN = 4


def check_json(what, value):
    """Fails where the code hands over a value spade cannot store, not later."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError("%s: values must be JSON-serializable: %s" % (what, error)) from None


class Env(object):
    """`digdag.env`: the task's params, and what the code hands back to the workflow."""

    def __init__(self, params):
        self.params = params
        self.subtask_config = collections.OrderedDict()
        self.export_params = {}
        self.store_params = {}
        self.state_params = {}
        self.subtask_index = 0

    def _update(self, target, what, params, kwds):
        update = {}
        if params:
            update.update(params)
        update.update(kwds)
        check_json(what, update)
        target.update(update)

    def store(self, params=None, **kwds):
        """Params for every task that runs after this one."""
        self._update(self.store_params, "digdag.env.store", params, kwds)

    def export(self, params=None, **kwds):
        """Params for the tasks this one generates."""
        self._update(self.export_params, "digdag.env.export", params, kwds)

    def set_state(self, params=None, **kwds):
        """State of this run. As with Digdag's own runner, it does not outlive the run."""
        self._update(self.state_params, "digdag.env.set_state", params, kwds)

    def add_subtask(self, function=None, **params):
        """Generates the child task `+subtaskN`: a call of a Python function or method
        (`py>`, with `params` as its params), or a task config given as a dict."""
        if function is None:
            config = collections.OrderedDict(params)
        elif isinstance(function, dict):
            config = collections.OrderedDict(function)
            config.update(params)
        elif callable(function):
            config = collections.OrderedDict()
            config["py>"] = command_of(function)
            config.update(params)
        else:
            raise TypeError(
                "digdag.env.add_subtask takes a function, a method or a dict of task config, "
                "not %r" % (function,)
            )
        check_json("digdag.env.add_subtask", config)
        self.subtask_config["+subtask%d" % self.subtask_index] = config
        self.subtask_index += 1


def command_of(function):
    """`module.Class.method` of a function, for the `py>` of a generated task."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise TypeError(
            "digdag.env.add_subtask needs a module-level function or a method of a "
            "module-level class, not %r" % (function,)
        )
    return "%s.%s" % (module, qualname)


def install_digdag(params):
    """Makes `import digdag` (and Digdag's older `import digdag_env`) give this run's env."""
    env = Env(params)
    digdag = types.ModuleType("digdag", "Digdag's Python API, provided by spade's py> runner.")
    digdag.env = env
    sys.modules["digdag"] = digdag
    digdag_env = types.ModuleType("digdag_env")
    digdag_env.params = env.params
    digdag_env.subtask_config = env.subtask_config
    digdag_env.export_params = env.export_params
    digdag_env.store_params = env.store_params
    digdag_env.state_params = env.state_params
    sys.modules["digdag_env"] = digdag_env
    return env


def is_stdlib_module(name):
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return name in names
    if name in sys.builtin_module_names:
        return True
    import sysconfig  # only on Pythons before 3.10, which lack `stdlib_module_names`

    stdlib = sysconfig.get_paths().get("stdlib", "")
    return bool(stdlib) and (
        os.path.exists(os.path.join(stdlib, name + ".py"))
        or os.path.isdir(os.path.join(stdlib, name))
    )


def resolve(command, workdir):
    """The object `command` names, and the object holding it: imports the longest prefix of
    `command` that is a module, then follows attributes."""
    parts = command.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise ValueError(
            "py> needs `module.function`, `module.Class.method` or `module.Class`, found `%s`"
            % command
        )
    top = parts[0]
    in_project = os.path.isfile(os.path.join(workdir, top + ".py")) or os.path.isdir(
        os.path.join(workdir, top)
    )
    if in_project and is_stdlib_module(top):
        raise ImportError(
            "the project's module `%s` has the name of a Python standard library module "
            "(duplicate module name with standard library): rename it" % top
        )
    module, rest = None, None
    for end in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:end])
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            # Only "this prefix is not a module" means: try a shorter one. A module that
            # imports something missing is the code's own error.
            missing = error.name or ""
            if missing and (name == missing or name.startswith(missing + ".")):
                continue
            raise
        rest = parts[end:]
        break
    if module is None:
        raise ModuleNotFoundError(
            "no module named `%s` in %s (the task's working directory) or on the Python path"
            % (top, workdir),
            name=top,
        )
    owner, target, path = None, module, module.__name__
    for attr in rest:
        try:
            owner, target = target, getattr(target, attr)
        except AttributeError:
            raise AttributeError("`%s` has no attribute `%s`" % (path, attr)) from None
        path += "." + attr
    return owner, target


def arguments(function, params, what):
    """Keyword arguments for `function` taken from params by name. A parameter with no default
    and no param of its name is an error naming it; `**kwargs` receives every param."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return {}
    args = {}
    takes_all = False
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            takes_all = True
        elif parameter.kind is parameter.VAR_POSITIONAL:
            continue
        elif parameter.name in params and parameter.kind is not parameter.POSITIONAL_ONLY:
            args[parameter.name] = params[parameter.name]
        elif parameter.default is parameter.empty:
            raise TypeError(
                "`%s` requires parameter `%s`, which is not set: add `%s:` to the task or to "
                "an `_export`" % (what, parameter.name, parameter.name)
            )
    if takes_all:
        return dict(params)
    return args


def call(command, owner, target, params):
    """Runs what `command` names: a class's `run`, a method of a new instance of its class, or a
    plain function."""
    if inspect.isclass(target):
        instance = target(**arguments(target, params, command))
        method = getattr(instance, "run", None)
        if not callable(method):
            raise AttributeError("class `%s` has no `run` method to call" % command)
        return method(**arguments(method, params, command + ".run"))
    if inspect.isclass(owner):
        class_name = command.rsplit(".", 1)[0]
        instance = owner(**arguments(owner, params, class_name))
        method = getattr(instance, command.rsplit(".", 1)[1])
        return method(**arguments(method, params, command))
    if not callable(target):
        raise TypeError("`%s` is not a function, a method or a class" % command)
    return target(**arguments(target, params, command))


def is_runner_frame(frame):
    return frame.filename == RUNNER or frame.filename.startswith("<frozen importlib")


def format_error(error):
    """The traceback of `error` without the runner's own frames."""
    import traceback  # only when something failed: it costs a few milliseconds to import

    shown = traceback.TracebackException(type(error), error, error.__traceback__)
    link = shown
    while link is not None:
        kept = [frame for frame in link.stack if not is_runner_frame(frame)]
        link.stack = traceback.StackSummary.from_list(kept)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return "".join(shown.format())


class Masked(object):
    """A text stream that replaces secret values by `***`, a whole line at a time (so a value
    written in two pieces is still masked)."""

    def __init__(self, stream, secrets):
        self._stream = stream
        self._secrets = sorted(secrets, key=len, reverse=True)
        self._pending = ""

    def _mask(self, text):
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def write(self, text):
        self._pending += text
        if "\n" in self._pending:
            done, _, self._pending = self._pending.rpartition("\n")
            self._stream.write(self._mask(done + "\n"))
        return len(text)

    def flush(self):
        if self._pending:
            self._stream.write(self._mask(self._pending))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def main():
    request_path = os.environ.get("SPADE_OPERATOR_REQUEST")
    result_path = os.environ.get("SPADE_OPERATOR_RESULT")
    if not request_path or not result_path:
        sys.stderr.write("this is spade's py> runner: spade runs it for `py>` tasks\n")
        return 2
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    params = request.get("params") or {}
    command = request.get("command")
    secrets = [
        value
        for value in (request.get("secrets") or {}).values()
        if isinstance(value, str) and len(value) >= MIN_MASKED_LEN
    ]
    if secrets:
        sys.stdout = Masked(sys.stdout, secrets)
        sys.stderr = Masked(sys.stderr, secrets)
    workdir = os.getcwd()
    env = install_digdag(params)
    failure = None
    try:
        if not isinstance(command, str):
            raise ValueError("py> needs the name of a function, found %s" % json.dumps(command))
        # The project's modules come first, as for `python script.py`; the standard library
        # ones cannot be shadowed (refused in `resolve`).
        sys.path.insert(0, workdir)
        owner, target = resolve(command, workdir)
        call(command, owner, target, params)
    except SystemExit as error:
        if error.code not in (None, 0):
            failure = (error, "the code called sys.exit(%r)" % (error.code,))
    except Exception as error:
        failure = (error, str(error))
    result = collections.OrderedDict(protocol=PROTOCOL)
    code = 0
    if failure is None:
        result["store"] = env.store_params
        result["export"] = env.export_params
        result["subtasks"] = env.subtask_config or None
    else:
        error, message = failure
        stacktrace = format_error(error)
        sys.stderr.write(stacktrace)
        result["error"] = collections.OrderedDict(
            [("message", message), ("class", type(error).__name__), ("stacktrace", stacktrace)]
        )
        code = 1
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as error:
        # The code put something into `digdag.env.subtask_config` (or a params dict) directly.
        message = "digdag.env results must be JSON-serializable: %s" % error
        sys.stderr.write("TypeError: %s\n" % message)
        failure_result = {"message": message, "class": "TypeError"}
        text = json.dumps({"protocol": PROTOCOL, "error": failure_result})
        code = 1
    with open(result_path, "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
