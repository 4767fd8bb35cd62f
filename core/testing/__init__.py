"""The plugin conformance kit (pytest), like singer-sdk's ``get_tap_test_class``.

A source plugin's test module::

    from crmsync.testing import get_source_test_class
    from my_plugin import MySource

    TestMySource = get_source_test_class(
        MySource,
        config=lambda tmp: {"path": str(make_fixture(tmp))},
        bad_config=lambda tmp: {"path": str(make_broken_fixture(tmp))},
    )

A sink plugin's::

    from crmsync.testing import get_sink_test_class

    TestMySink = get_sink_test_class(MySink, config=lambda tmp: {...}, read_back=my_read_back)

Each test runs the plugin through the real runner and a temporary SQLite
store, exactly as ``crmsync run`` would. ``config`` may be a dict or a
function of a temporary directory (for fixture files); relative paths in it
are relative to that directory.
"""

from .harness import kit_config, kit_host, kit_run, read_source
from .receiver import ReceiverPool, RecordingReceiver
from .samples import SampleSource, sample_interactions
from .sinks import get_sink_test_class
from .sources import get_source_test_class

__all__ = ["ReceiverPool", "RecordingReceiver", "SampleSource", "get_sink_test_class", "get_source_test_class", "kit_config", "kit_host", "kit_run", "read_source", "sample_interactions"]
