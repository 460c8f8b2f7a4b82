export function Clients() { return <div class="screen"><h1>Clients</h1></div> }
