// The public API of pagecow: the only barrel; named exports only.
export { ImageStore, MAX_IO_BYTES, type ReadOptions, type StoreInfo } from './image/image-store.js'
export { DEFAULT_AUTO_FLUSH_MS, type CreateOptions, type OpenOptions } from './image/options.js'
export { checkStore, type FsckReport, type FsckProblem } from './image/fsck.js'
export type { FsckOptions, FsckProgress, DataCounts as FsckCounts } from './store/fsck-data.js'
export { repairStore, type RepairReport } from './store/repair-store.js'
export { bindLower, type BindOptions, type BindResult, type LowerProgress } from './integrity/bind-lower.js'
export { verifyStore, type VerifyOptions, type VerifyReport, type VerifyProblem } from './integrity/verify-store.js'
export type { CopyupBase } from './integrity/copyup-bases.js'
export { exportImage, exportImageToStream, type ExportOptions, type ExportProgress, type ExportStreamOptions } from './image/export.js'
export {
  exportIncremental,
  exportIncrementalToStream,
  type IncrementalExportOptions,
  type IncrementalExportResult,
  type ImageIncrementalExportResult,
  type IncrementalProgress,
  type IncrementalStreamOptions,
} from './incremental/export-incremental.js'
export { applyIncremental, type ApplyOptions, type ApplyProgress, type ApplyResult, type ImageApplyResult } from './incremental/apply-incremental.js'
export type { TreeApplyResult } from './incremental/apply-tree-incremental.js'
export type { TreeIncrementalExportResult } from './incremental/export-tree-incremental.js'
export { type IncrementalMark } from './incremental/incremental-format.js'
export { POSITION_XATTR } from './incremental/target-position.js'
export { isExportTemporary } from './image/temp-output.js'
export { checkOutputPath } from './image/output-guard.js'
export { ERROR_CODES, PagecowError, isPagecowError, type ErrorCode } from './errors.js'
export { DEFAULT_PAGE_SIZE, MAX_FILE_SIZE, MAX_PAGE_SIZE, MIN_PAGE_SIZE } from './geometry.js'
export type { Extent, ExtentState } from './page/extent.js'
export type { LayerExtent, LayerState } from './layers/layer-extent.js'
export type { ChainLayer } from './layers/chain-layer.js'
export type { LayerMapView } from './layers/layer-map-view.js'
export { MAX_CHAIN_DEPTH } from './layers/base-store.js'
export type { RebaseUnsafeOptions, RebaseUnsafeResult } from './layers/rebase-unsafe.js'
export type { PageState } from './page/page-state.js'
export type { CompactOptions, CompactProgress, CompactResult } from './page/compaction.js'
export { VERSION } from './version.js'
export { NbdServer, type DisconnectReason, type NbdServerOptions } from './nbd/server.js'
export { NBD_DEFAULTS } from './nbd/options.js'
export { StoreMount, checkMountpoint, unmountStore, type MountOptions, type UnmountOptions } from './fuse/store-mount.js'
export { createStore, openStore, storeKind, type AnyStore, type AnyCreateOptions } from './open-store.js'
export { ControlServer, CONTROL_DEFAULTS, type ControlServerOptions } from './control/control-server.js'
export { ControlClient } from './control/control-client.js'
export { callServer, callStore, watchStore } from './control/call-store.js'
export { CONTROL_SOCKET_FILE, controlSocketPath } from './control/control-socket-path.js'
export type { ControlCall, ControlStream, ControlMethod } from './control/control-method.js'
export { flushMethod } from './control/methods/flush.js'
export { inspectMethod } from './control/methods/inspect.js'
export { markMethod, marksMethod, unmarkMethod } from './control/methods/marks.js'
export { changesMethod, type ChangesResult } from './control/methods/changes.js'
export { freezeMethod, thawMethod, type FrozenResult } from './control/methods/freeze.js'
export { watchMethod, WATCH_EVENTS, type WatchEvent, type WatchEventName } from './control/methods/watch.js'
export { inspectAny, inspectStore, inspectTree, inspectTreeFile, type AnyInspectReport, type InspectReport, type TreeInspectReport, type TreeFileReport } from './inspect-report.js'
export { buildPageMapView, DEFAULT_WIDTH, MAX_ROWS, type PageMapView, type StateTotal } from './page-map-view.js'
export { detectLowerFormat, LOWER_FORMATS, type LowerFormat } from './lower-format.js'
export { TreeStore, type TreeStoreInfo, type TreeFileInfo } from './tree/tree-store.js'
export { TreeFileHandle } from './tree/file-handle.js'
export type { TreeStat, TreeStatfs, DirEntry, DirEntryBytes } from './tree/tree-stat.js'
export type { TreePath } from './tree/names.js'
export { nameFromBytes, nameToBytes } from './name-bytes.js'
export { formatNs } from './time-ns.js'
export type { FileType } from './tree/file-type.js'
export type { TreeChange } from './tree/changes.js'
export type { TreeChangeSince } from './tree/changed-since.js'
export type { NamespaceDelta, DeltaName, DeltaObject, DeltaTouched } from './tree/namespace-delta.js'
export type { Mark } from './changes/mark-table.js'
export { MARK_NAME_MAX } from './changes/mark-name.js'
export { DEFAULT_EVENT_BLOCK, type FirstDirtyEvent, type FirstDirtyHandler, type FirstDirtyOptions } from './changes/first-dirty.js'
export { totalsOf, type ChangedExtent, type ChangeKind, type ChangeTotals } from './changes/changed-extents.js'
export type { Since } from './changes/mark-name.js'
export type {
  TreeCreateOptions,
  TreeOpenOptions,
  NewObjectOptions,
  MknodOptions,
  RenameOptions,
  RmOptions,
  ReaddirOptions,
  UtimensOptions,
  SetxattrOptions,
} from './tree/options.js'
export type { OpenFlags } from './tree/open-flags.js'
export { checkTreeStore, type TreeFsckReport } from './tree/fsck.js'
export { checkTreeOutput, exportTree, type ExportTreeOptions, type ExportTreeProgress, type ExportTreeResult } from './tree/export.js'
export type { StoreKind } from './store/meta.js'
export type { FreezeOptions, FrozenFile } from './store/freeze-options.js'
export { SquashfsImage } from './squashfs/squashfs-image.js'
export type { SquashfsOpenOptions } from './squashfs/options.js'
export type { SquashfsInode, FileInode, DirectoryInode, SymlinkInode, DeviceInode, IpcInode } from './squashfs/inode.js'
export type { SquashfsDirEntry } from './squashfs/directory.js'
export type { SquashfsStat } from './squashfs/squashfs-stat.js'
export type { SquashfsFileType } from './squashfs/file-type.js'
export type { Superblock as SquashfsSuperblock, CompressorName as SquashfsCompressor } from './squashfs/superblock.js'
