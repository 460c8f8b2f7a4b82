export function SyncScreen() { return <div class="screen"><h1>Sync</h1></div> }
