"""The one-line progress message of a session's image build (pure, no I/O)."""

from __future__ import annotations

from erchub.spawner.session_build import BuildSteps, build_line_html

#: a pip-buildpack build's log, as Docker's classic builder writes it (abridged)
BUILD_LOG = """\
Step 1/9 : FROM erchub/base:bookworm
 ---> 0446d110b3f2
Step 2/9 : ENV DEBIAN_FRONTEND=noninteractive     LANG=C.UTF-8
 ---> Using cache
Step 3/9 : RUN set -e;     group="$(getent group 1000 | cut -d: -f1)";     useradd --uid 1000 jovyan
Step 4/9 : RUN apt-get -qq update &&     apt-get -qq install --yes --no-install-recommends graphviz
Step 5/9 : RUN python3 -m venv /srv/venv && chown -R 1000:1000 /srv/venv
Step 6/9 : COPY --chown=1000:1000 src/ /home/jovyan/
Step 7/9 : RUN pip install --no-cache-dir -r requirements.txt
 ---> Running in 6e371d06e8d4
Collecting numpy
Successfully installed contourpy-1.3.3 cycler-0.12.1 fonttools-4.69.1 kiwisolver-1.5.1 \
matplotlib-3.11.2 numpy-2.4.6 pyparsing-3.3.3
Step 8/9 : RUN chmod +x postBuild && ./postBuild
Step 9/9 : RUN update-ca-certificates
Successfully built 4a42aa857e9f
"""


def test_the_status_names_each_step_and_holds_through_its_output() -> None:
    steps = BuildSteps()
    statuses = [steps.follow(line) for line in BUILD_LOG.splitlines()]

    prefix = "Building the runtime image: "
    assert [status.removeprefix(prefix) for status in dict.fromkeys(statuses)] == [
        "starting from the base image (step 1/9)",
        "configuring the image (step 2/9)",
        "creating the notebook user (step 3/9)",
        "installing system packages (step 4/9)",
        "creating the Python environment (step 5/9)",
        "copying files (step 6/9)",
        "installing packages (step 7/9)",
        "running postBuild (step 8/9)",
        "running a build command (step 9/9)",
    ]
    # pip's long lines become the status of their step, never the message
    lines = BUILD_LOG.splitlines()
    installed = next(i for i, line in enumerate(lines) if line.startswith("Successfully installed"))
    assert statuses[installed] == prefix + "installing packages (step 7/9)"
    assert max(len(status) for status in statuses) < 80


def test_lines_before_the_first_step_say_the_build_started() -> None:
    steps = BuildSteps()

    assert steps.follow("Sending build context to Docker daemon  10.2kB") == (
        "Building the runtime image"
    )
    assert steps.follow("Step 1/2 : from erchub/base:bookworm").endswith(
        "starting from the base image (step 1/2)"
    )


def test_a_steps_arguments_that_look_like_steps_change_nothing() -> None:
    steps = BuildSteps()
    steps.follow("Step 2/3 : RUN pip install -r requirements.txt")

    assert steps.follow("echo Step 3/3 : FROM elsewhere").endswith("(step 2/3)")


def test_the_html_message_carries_status_and_line_escaped() -> None:
    markup = build_line_html("Building: copying files (step 1/2)", "<img src=x onerror=alert(1)>")

    assert markup == (
        '<span class="erc-build-status">Building: copying files (step 1/2)</span>'
        '<span class="erc-build-line">&lt;img src=x onerror=alert(1)&gt;</span>'
    )
