/**
 * erchub's JupyterLab extension: the ERC side panel and the "Publish ERC" notebook toolbar
 * button.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { PageConfig } from '@jupyterlab/coreutils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import {
  INotebookModel,
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { ToolbarButton } from '@jupyterlab/ui-components';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';

import { ErchubApi } from './api';
import { keepCleanOnKernelSync } from './kernelMetadata';
import { ErcPanel, ercIcon } from './panel';
import { ResultsTabs } from './resultsView';

const CommandIDs = {
  open: 'erchub:open-panel',
  publish: 'erchub:publish'
} as const;

/** The notebook's path relative to the server root (without a drive prefix). */
function notebookPath(panel: NotebookPanel): string {
  return panel.context.localPath;
}

/** Adds "Publish ERC" to every notebook's toolbar. */
class PublishButtonExtension implements DocumentRegistry.IWidgetExtension<
  NotebookPanel,
  INotebookModel
> {
  constructor(private readonly app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      className: 'erchub-publish-button',
      icon: ercIcon,
      label: 'Publish ERC',
      tooltip: 'Publish this notebook and its folder as an Executable Research Compendium',
      onClick: () => {
        void this.app.commands.execute(CommandIDs.publish, { path: notebookPath(panel) });
      }
    });
    panel.toolbar.insertItem(10, 'erchubPublish', button);
    return new DisposableDelegate(() => button.dispose());
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'erchub:plugin',
  description:
    'The ERC panel (metadata, parameters, reproducibility check) and the Publish ERC button.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, restorer: ILayoutRestorer | null) => {
    const api = new ErchubApi();
    const openNotebook = (path: string): NotebookPanel | undefined =>
      tracker.find(notebook => notebookPath(notebook) === path);
    const panel = new ErcPanel(
      api,
      { prefix: PageConfig.getOption('hubPrefix'), host: PageConfig.getOption('hubHost') },
      new ResultsTabs(app, tracker),
      {
        isDirty: path => openNotebook(path)?.context.model.dirty ?? false,
        runAllAndSave: async path => {
          const notebook =
            openNotebook(path) ??
            ((await app.commands.execute('docmanager:open', {
              path,
              factory: 'Notebook'
            })) as NotebookPanel);
          await notebook.context.ready;
          await notebook.sessionContext.ready;
          const ran = await NotebookActions.runAll(notebook.content, notebook.sessionContext);
          if (!ran) {
            throw new Error('a cell failed: see the notebook; fix it and publish again');
          }
          await notebook.context.save();
        }
      }
    );
    app.shell.add(panel, 'right', { rank: 900 });
    restorer?.add(panel, 'erchub-panel');

    const follow = (notebook: NotebookPanel | null): void => {
      panel.setNotebook(notebook ? notebookPath(notebook) : null);
    };
    tracker.currentChanged.connect((_, notebook) => follow(notebook));
    // the parameters are read from the saved file: read them again after each save
    tracker.widgetAdded.connect((_, notebook) => {
      keepCleanOnKernelSync(notebook.context.model);
      notebook.context.saveState.connect((__, state) => {
        if (state === 'completed' && tracker.currentWidget === notebook) {
          panel.reloadParameters();
        }
      });
      notebook.context.pathChanged.connect(() => {
        if (tracker.currentWidget === notebook) {
          follow(notebook);
        }
      });
    });
    void app.restored.then(() => follow(tracker.currentWidget));
    // a session launched for a compendium opens on the panel: readers come for its parameters
    void Promise.all([panel.loadContext(), app.restored]).then(([context]) => {
      if (context?.compendium_id) {
        app.shell.activateById(panel.id);
      }
    });

    app.commands.addCommand(CommandIDs.open, {
      label: 'Show the ERC panel',
      caption: 'Parameters, reproducibility check and metadata of the ERC',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.publish, {
      label: 'Publish ERC',
      caption: 'Publish the current notebook and its folder as an Executable Research Compendium',
      isEnabled: args => typeof args.path === 'string' || tracker.currentWidget !== null,
      execute: async args => {
        const path =
          typeof args.path === 'string'
            ? args.path
            : tracker.currentWidget
              ? notebookPath(tracker.currentWidget)
              : null;
        if (path === null) {
          return;
        }
        // what is published is the file on disk: the flow asks to run all and save a
        // notebook with unsaved changes first
        app.shell.activateById(panel.id);
        panel.publish(path);
      }
    });
    app.docRegistry.addWidgetExtension('Notebook', new PublishButtonExtension(app));
  }
};

export default plugin;
