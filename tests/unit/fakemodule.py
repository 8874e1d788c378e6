"""A stand-in for the two AnsibleModule calls FileWriter makes, applied for real to file modes."""

import os
import stat


class FakeModule:
    """The two AnsibleModule calls FileWriter makes, applied for real to the file mode."""

    def __init__(self, check_mode=False):
        self.check_mode = check_mode

    def load_file_common_arguments(self, params, path=None):
        return dict(params, path=path)

    def set_fs_attributes_if_different(self, file_args, changed):
        mode = int(file_args["mode"], 8)
        if stat.S_IMODE(os.stat(file_args["path"]).st_mode) != mode:
            if not self.check_mode:
                os.chmod(file_args["path"], mode)
            return True
        return changed
